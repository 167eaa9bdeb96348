"""Peak memory of a many-view scene: DTU scan24's 49 views (1600x1200) repeated to N, from the caches.

    python benchmarks/bench_memory.py --views 200 --json mem.json                 # depth kept low-res
    python benchmarks/bench_memory.py --views 200 --full-depth --json mem.json    # as before: full-size

The 49 views' geometry (default settings) and embeddings come from the cache under ``$MVSAM_HOME``
(computed first when missing: minutes). The scene is then the 49 views repeated to ``--views`` (each
copy a view of its own, sharing its camera, image and cached embedding), and the process's resident
memory is read after each stage: geometry attached, every embedding loaded and every view located
(``Segmenter.prepare``), one segmentation from the protocol clicks on view 0 with every full-size mask
asked for. ``--full-depth`` attaches every view's depth upsampled to full size, as ``View.depth`` was
stored before it was kept at the working resolution (``scene.LowResDepth``). The masks' hash says whether
the two storages give the same segmentation. Peak = the process's high-water mark (``VmHWM``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mvsam.evaluate.dtu import load_ground_truth
from mvsam.evaluate.protocol import protocol_clicks
from mvsam.geometry import compute_geometry
from mvsam.sam import load_predictor
from mvsam.scene import LowResDepth, Scene, View
from mvsam.segment.interactive import Segmenter
from mvsam.segment.prompts import Click

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def memory_mib() -> dict[str, int]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of this process, MiB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: round(int(status[key].split()[0]) / 1024) for key in ("VmRSS", "VmHWM")}


def repeated_scene(base: Scene, count: int, full_depth: bool) -> Scene:
    """``base``'s views repeated to ``count`` views, with low-res or full-size depth."""
    views = []
    for k in range(count):
        view = base.views[k % len(base.views)]
        source = view.depth_source  # each copy holds arrays of its own, as distinct views would
        depth = {"depth_source": LowResDepth(source.depth.copy(), source.confidence.copy())}
        if full_depth:
            depth = {"depth": np.array(view.depth), "depth_confidence": np.array(view.depth_confidence)}
        views.append(
            View(
                f"{k:03d}_{view.name}",
                view.image_path,
                view.width,
                view.height,
                view.camera,
                **depth,
                depth_range=view.depth_range,
            )
        )
    return Scene(root=base.root, views=views, source_format=base.source_format, cache_dir=base.cache_dir)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    report: dict = {"views": args.views, "full_depth": args.full_depth, "start": memory_mib()}
    data = SHARED / "data/dtu_scan24"
    base = Scene.load(data)
    truth = load_ground_truth(data, base)[0]
    compute_geometry(base, progress=False)
    scene = repeated_scene(base, args.views, args.full_depth)
    del base
    report["geometry"] = memory_mib()
    predictor = load_predictor("mobile_sam", cache_dir=scene.cache_dir / "embeddings")
    report["encoder"] = predictor.encoder_name
    segmenter = Segmenter(scene, predictor, progress=False)
    tick = time.perf_counter()
    segmenter.prepare()
    report["prepare"] = memory_mib() | {"seconds": round(time.perf_counter() - tick, 1)}
    clicks = protocol_clicks(truth)
    pairs = zip(clicks.points, clicks.labels, strict=True)
    prompts = [Click(0, float(x), float(y), bool(b)) for (x, y), b in pairs]
    tick = time.perf_counter()
    result = segmenter.segment(prompts)
    masks = [segmenter.mask(index) for index in range(len(scene.views))]
    report["segment"] = memory_mib() | {"seconds": round(time.perf_counter() - tick, 1)}
    report["rounds"] = result.iterations
    report["masks_sha256"] = hashlib.sha256(b"".join(np.packbits(m).tobytes() for m in masks)).hexdigest()
    report["peak_mib"] = memory_mib()["VmHWM"]
    report["load"] = os.getloadavg()[0]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200, help="views in the repeated scene")
    parser.add_argument("--full-depth", action="store_true", help="store full-size depth (as before)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.views < 1:
        parser.error("--views must be at least 1")
    report = run(args)
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
