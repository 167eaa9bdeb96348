"""Geometry benchmark on the shared real data: SfM accuracy/speed and MVS depth quality/speed.

    python benchmarks/bench_geometry.py [--data ../shared/data] [--json bench_geometry.json] [--skip-fox]

- SfM on LLFF fern images_8 (poses ignored): registered views, median relative-rotation error vs
  poses_bounds.npy (LLFF columns [down, right, back] -> OpenCV [right, down, forward] = [c1, c0, -c2]).
- SfM on instant-ngp fox (50 views 1080x1920): registered views.
- Depth on DTU scan24 (known cameras from cameras_sphere.npz): each view's ground-truth mask is warped into
  its 4 nearest views (by camera centre distance) through the TARGET view's depth (``warp_mask``) and
  compared with the target's ground-truth mask over target pixels with valid depth; plus the valid share.
- Depth on fern (SfM cameras), and the warm (cached) ``compute_geometry`` time.
Seconds are wall clock on this machine; CPU seconds (all threads) are given beside them because the
development machine is shared.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from mvsam.geometry import GeometrySettings, GeometryTimings, compute_geometry
from mvsam.geometry.metrics import masked_iou, relative_rotation_errors, warp_mask
from mvsam.geometry.sfm import reconstruct_cameras
from mvsam.io.conventions import llff_to_world_from_cam
from mvsam.io.images import read_mask_png
from mvsam.io.loaders import load_scene

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def bench_sfm(folder: Path, cache: Path, poses_bounds: Path | None) -> dict:
    scene = load_scene(folder, format="images", cache_dir=cache)
    with Clock() as clock:
        report = reconstruct_cameras(scene)
    result = {
        "views": len(scene.views),
        "registered": len(report.registered),
        "unregistered": report.unregistered,
        "points": report.num_points,
        "matching": report.matching,
        "seconds": round(clock.wall, 1),
        "cpu_seconds": round(clock.cpu, 1),
    }
    if poses_bounds is not None:
        reference = [llff_to_world_from_cam(row[:15].reshape(3, 5))[0] for row in np.load(poses_bounds)]
        rows = [i for i, v in enumerate(scene.views) if v.camera is not None]
        errors = relative_rotation_errors(
            [scene.views[i].camera.world_from_cam for i in rows], [reference[i] for i in rows]
        )
        result["rotation_error_median_deg"] = round(float(np.median(errors)), 3)
        result["rotation_error_max_deg"] = round(float(np.max(errors)), 3)
    return result


def nearest_views(scene, index: int, count: int) -> list[int]:
    centre = scene.views[index].camera.center
    distances = [
        (np.linalg.norm(v.camera.center - centre), i) for i, v in enumerate(scene.views) if i != index
    ]
    return [i for _, i in sorted(distances)[:count]]


def bench_dtu(root: Path, cache: Path) -> dict:
    scene = load_scene(root, cache_dir=cache)
    timings = GeometryTimings()
    with Clock() as clock:
        compute_geometry(scene, GeometrySettings(), progress=True, timings=timings)
    masks = [read_mask_png(root / "mask" / f"{int(v.stem):03d}.png") for v in scene.views]
    ious = []
    for target, view in enumerate(scene.views):
        for source in nearest_views(scene, target, 4):
            warped, valid = warp_mask(masks[source], scene.views[source].camera, view.camera, view.depth)
            ious.append(masked_iou(warped, masks[target], valid))
    valid_share = float(np.mean([np.mean(v.depth > 0) for v in scene.views]))
    fresh = load_scene(root, cache_dir=cache)
    warm = GeometryTimings()
    with Clock() as warm_clock:
        compute_geometry(fresh, GeometrySettings(), progress=False, timings=warm)
    return {
        "views": len(scene.views),
        "mask_warp_iou_mean": round(float(np.mean(ious)), 4),
        "mask_warp_iou_min": round(float(np.min(ious)), 4),
        "valid_depth_share": round(valid_share, 4),
        "triangulation_seconds": round(timings.cameras, 1),
        "depth_seconds": round(timings.depth, 1),
        "depth_seconds_per_view": round(timings.depth / len(scene.views), 2),
        "total_seconds": round(clock.wall, 1),
        "total_cpu_seconds": round(clock.cpu, 1),
        "warm_seconds": round(warm_clock.wall, 2),
        "warm_cached": warm.cached,
    }


def bench_fern_depth(folder: Path, cache: Path) -> dict:
    scene = load_scene(folder, format="images", cache_dir=cache)
    timings = GeometryTimings()
    with Clock() as clock:
        compute_geometry(scene, GeometrySettings(), progress=True, timings=timings)
    fresh = load_scene(folder, format="images", cache_dir=cache)
    warm = GeometryTimings()
    with Clock() as warm_clock:
        compute_geometry(fresh, GeometrySettings(), progress=False, timings=warm)
    return {
        "views": len(scene.views),
        "sfm_seconds": round(timings.cameras, 1),
        "depth_seconds": round(timings.depth, 1),
        "depth_seconds_per_view": round(timings.depth / len(scene.views), 2),
        "total_cpu_seconds": round(clock.cpu, 1),
        "valid_depth_share": round(float(np.mean([np.mean(v.depth > 0) for v in scene.views])), 4),
        "warm_seconds": round(warm_clock.wall, 2),
        "warm_cached": warm.cached,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=Path("bench_geometry.json"))
    parser.add_argument("--skip-fox", action="store_true", help="skip the 50-view fox SfM (minutes)")
    parser.add_argument("--only", choices=["fern", "fox", "dtu"], default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {}

    def record(name: str, metrics: dict) -> None:
        """Print and save each result as soon as it exists (the fox SfM takes minutes)."""
        results[name] = metrics
        print(json.dumps({name: metrics}), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))

    with tempfile.TemporaryDirectory(prefix="mvsam_bench_") as work:
        work = Path(work)
        fern = args.data / "llff_fern"
        if args.only in (None, "fern"):
            record("sfm_fern", bench_sfm(fern / "images_8", work / "fern_sfm", fern / "poses_bounds.npy"))
            record("depth_fern", bench_fern_depth(fern / "images_8", work / "fern"))
        if args.only in (None, "dtu"):
            record("depth_dtu", bench_dtu(args.data / "dtu_scan24", work / "dtu"))
        if args.only in (None, "fox") and not args.skip_fox:
            record("sfm_fox", bench_sfm(args.data / "ngp_fox" / "images", work / "fox", None))
    print(f"\n{'benchmark':<12} {'metric':<28} value")
    for name, metrics in results.items():
        for key, value in metrics.items():
            print(f"{name:<12} {key:<28} {value}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
