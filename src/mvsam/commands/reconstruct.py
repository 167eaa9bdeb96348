"""``mvsam reconstruct``: cameras, depth and a fused point cloud for a scene (geometry only, cached)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.cache import atomic_write_bytes
from mvsam.commands.common import (
    add_geometry_arguments,
    add_scene_arguments,
    check_output_folder,
    clear_outputs,
    geometry_settings,
    load_scene,
)
from mvsam.errors import InputError
from mvsam.export.ply import write_ply
from mvsam.geometry import GeometryTimings, compute_geometry, fuse_depth
from mvsam.scene import Scene


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="estimate cameras and depth for every view and write them with a point cloud"
    )
    parser.add_argument("scene", help="scene folder or video (any supported layout)")
    parser.add_argument("--out", required=True, help="output folder for views.json, depth/, points.ply")
    add_scene_arguments(parser)
    parser.add_argument("--no-depth", action="store_true", help="cameras and sparse points only")
    add_geometry_arguments(parser)
    parser.add_argument("--min-confidence", type=float, default=0.3, help="points.ply confidence cut")
    parser.add_argument("--voxel-size", type=float, default=None, help="point cloud voxel (scene units)")
    parser.set_defaults(run=run)


OUTPUTS = ["views.json", "depth", "points.ply"]


def write_outputs(
    scene: Scene,
    out: Path,
    min_confidence: float,
    voxel_size: float | None,
    registration: dict[str, str] | None = None,
) -> list[Path]:
    """views.json (with each view's SfM ``registration`` when given), depth/<stem>.npy per view with
    depth, points.ply (when any depth); returns the paths."""
    clear_outputs(out, OUTPUTS)
    records = []
    written = []
    for view in tqdm(scene.views, desc="writing depth", unit="view"):
        camera = view.camera
        record = {
            "image": view.name,
            "width": view.width,
            "height": view.height,
            "K": None if camera is None else camera.K.tolist(),
            "world_from_cam": None if camera is None else camera.world_from_cam.tolist(),
        }
        if registration:
            record["registration"] = registration.get(view.name)
        records.append(record)
        if view.depth is not None:
            path = out / "depth" / f"{view.stem}.npy"
            buffer = io.BytesIO()
            np.save(buffer, view.depth.astype(np.float32))
            atomic_write_bytes(path, buffer.getvalue())
            written.append(path)
    atomic_write_bytes(out / "views.json", json.dumps(records, indent=1).encode())
    written.append(out / "views.json")
    if any(view.has_depth for view in scene.views):
        cloud = fuse_depth(scene, min_confidence=min_confidence, voxel_size=voxel_size)
        write_ply(out / "points.ply", cloud.xyz, cloud.rgb)
        written.append(out / "points.ply")
    return written


def run(args) -> int:
    settings = geometry_settings(args, compute_depth=not args.no_depth)
    if args.min_confidence < 0 or args.min_confidence > 1:
        raise InputError(f"--min-confidence must be in [0, 1], got {args.min_confidence}")
    if args.voxel_size is not None and not args.voxel_size > 0:
        raise InputError(f"--voxel-size must be > 0, got {args.voxel_size}")
    out = check_output_folder(args.out)
    scene = load_scene(args)
    timings = GeometryTimings()
    compute_geometry(scene, settings, progress=True, timings=timings)
    written = write_outputs(scene, out, args.min_confidence, args.voxel_size, timings.registration)
    for note in scene.notes:
        print(f"note: {note}")
    if timings.registration:
        kinds = list(timings.registration.values())
        print(
            f"SfM: {kinds.count('registered')} views registered by the mapper, {kinds.count('pnp')} by PnP, "
            f"{kinds.count('unregistered')} unregistered"
        )
        for name, kind in timings.registration.items():
            if kind != "registered":
                print(f"  {name}: {kind}" + (" (no camera, no depth)" if kind == "unregistered" else ""))
    registered = sum(view.camera is not None for view in scene.views)
    with_depth = [v for v in scene.views if v.has_depth]
    valid = np.mean([float(np.mean(v.depth > 0)) for v in with_depth]) if with_depth else 0.0
    cached = f" (from cache: {', '.join(timings.cached)})" if timings.cached else ""
    print(
        f"{registered}/{len(scene.views)} views with cameras, {len(with_depth)} with depth "
        f"({100 * valid:.0f}% of pixels valid); cameras {timings.cameras:.1f}s, "
        f"depth {timings.depth:.1f}s{cached}"
    )
    print(f"wrote {len(written)} files under {args.out}/")
    return 0
