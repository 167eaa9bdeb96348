"""SfM speed and accuracy from plain photos: per-stage seconds, registration and rotation errors.

    python benchmarks/bench_sfm.py --cases fox50 dtu49 --variants sift today default [--json bench_sfm.json]

Each case is a posed scene of the shared data written as a plain image folder (full size: links to the
original files; otherwise resized), so SfM sees photos without cameras; each variant (a named set of
``SfmSettings``) runs on it from an empty cache, one after the other in this process. Reported per run:
views registered by the mapper / by PnP / not at all, sparse points, relative rotation errors of the
registered views against the dataset's cameras (median / max degrees), wall seconds per stage
(extraction, matching, verification, mapping, PnP), process CPU seconds and the load average, since the
development machine is shared. Speed claims are ratios between variants of one run.

Cases: ``fox50`` (instant-ngp fox, 50 views 1080x1920), ``dtu49`` (DTU scan24, 49 views 1600x1200),
``dtuN[a|b]`` (N = 6, 10, 20 DTU views at 480 px; ``a``: views 0, k, 2k, ...; ``b``: the same spacing shifted
by k/2, held out from tuning), ``fern20`` (LLFF fern ``images_8``) and ``fernN[a|b]`` alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mvsam.evaluate.geometry import write_subset
from mvsam.geometry.metrics import relative_rotation_errors
from mvsam.geometry.sfm import SfmSettings, reconstruct_cameras
from mvsam.io.loaders import load_scene

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

VARIANTS: dict[str, dict] = {
    "sift": {"features": "sift"},
    "default": {},
    "today": {"retrieval_above": 10**6},  # XFeat before retrieval: exhaustive matching up to 60 views
}


@dataclass
class Case:
    data: str  # folder under the data root
    indices: list[int] | None  # None: every view
    size: int | None  # long side; None: original files
    image_subdir: str | None = None


def parse_case(name: str) -> Case:
    if name == "fox50":
        return Case("ngp_fox", None, None)
    if name == "dtu49":
        return Case("dtu_scan24", None, None)
    if name == "fern20":
        return Case("llff_fern", None, None, "images_8")
    for prefix, data, total, size, subdir in (
        ("dtu", "dtu_scan24", 49, 480, None),
        ("fern", "llff_fern", 20, None, "images_8"),
    ):
        if name.startswith(prefix) and name[-1] in "ab":
            count = int(name[len(prefix) : -1])
            step = total / count
            shift = 0.0 if name[-1] == "a" else step / 2
            indices = sorted({int(round(shift + k * step)) % total for k in range(count)})
            return Case(data, indices, size, subdir)
    raise SystemExit(f"unknown case {name!r}")


def parse_variant(text: str) -> tuple[str, dict]:
    """``name`` (a preset) or ``name=key:value,key:value`` (SfmSettings fields over the defaults)."""
    name, _, fields = text.partition("=")
    if not fields:
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; presets: {', '.join(VARIANTS)}")
        return name, VARIANTS[name]
    defaults = asdict(SfmSettings())
    settings = {}
    for item in fields.split(","):
        key, _, value = item.partition(":")
        if key not in defaults:
            raise SystemExit(f"unknown SfmSettings field {key!r}")
        kind = type(defaults[key])
        settings[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return name, settings


def write_case(case: Case, data_root: Path, work: Path):
    """The reference scene (with the dataset's cameras) and a plain image folder of the case's views."""
    reference = load_scene(
        data_root / case.data, cache_dir=work / "reference", image_subdir=case.image_subdir
    )
    indices = case.indices if case.indices is not None else list(range(len(reference.views)))
    folder = work / "photos"
    if case.size is None:
        (folder / "images").mkdir(parents=True)
        source = (
            data_root
            / case.data
            / (case.image_subdir or ("image" if case.data == "dtu_scan24" else "images"))
        )
        for index in indices:
            name = reference.views[index].name
            os.symlink((source / name).resolve(), folder / "images" / name)
    else:
        write_subset(reference, data_root / case.data, indices, case.size, folder)
    return reference, folder


def run_variant(reference, folder: Path, cache: Path, settings: SfmSettings) -> dict:
    scene = load_scene(folder, format="images", cache_dir=cache)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = reconstruct_cameras(scene, settings, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    posed = [v for v in scene.views if v.camera is not None]
    by_name = {v.name: v for v in reference.views}
    errors = relative_rotation_errors(
        [v.camera.world_from_cam for v in posed], [by_name[v.name].camera.world_from_cam for v in posed]
    )
    stages = {k: round(v, 1) for k, v in asdict(report.seconds).items()}
    return {
        "views": len(scene.views),
        "mapper": len(report.registered),
        "pnp": len(report.pnp),
        "unregistered": len(report.unregistered),
        "points": report.num_points,
        "matching": report.matching,
        "pairs": report.pairs,
        "rot_median_deg": round(float(np.median(errors)), 3),
        "rot_max_deg": round(float(np.max(errors)), 3),
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "stages": stages,
        "load_start": round(load, 2),
        "load_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cases", nargs="+", default=["fox50", "dtu49"])
    parser.add_argument("--variants", nargs="+", default=["sift", "default"])
    parser.add_argument("--json", type=Path, default=Path("bench_sfm.json"))
    args = parser.parse_args()
    variants = [parse_variant(v) for v in args.variants]
    results: dict[str, dict] = {}
    for case_name in args.cases:
        case = parse_case(case_name)
        with tempfile.TemporaryDirectory(prefix="mvsam_bench_sfm_") as work:
            reference, folder = write_case(case, args.data, Path(work))
            for name, fields in variants:
                cache = Path(work) / f"cache_{name}"
                result = run_variant(reference, folder, cache, SfmSettings(**fields))
                shutil.rmtree(cache, ignore_errors=True)
                results.setdefault(case_name, {})[name] = {"settings": fields, **result}
                print(json.dumps({case_name: {name: results[case_name][name]}}), flush=True)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=2))
    print(
        f"\n{'case':<8} {'variant':<14} {'reg':>7} {'pnp':>4} {'rot med':>8} {'rot max':>8} {'s':>7} stages"
    )
    for case_name, runs in results.items():
        for name, r in runs.items():
            stages = " ".join(f"{k[:4]} {v}" for k, v in r["stages"].items())
            print(
                f"{case_name:<8} {name:<14} {r['mapper'] + r['pnp']:>3}/{r['views']:<3} {r['pnp']:>4} "
                f"{r['rot_median_deg']:>8.2f} {r['rot_max_deg']:>8.2f} {r['seconds']:>7.1f} {stages}"
            )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
