"""Sparse unposed DTU subsets: the click protocol on view 0 of k views at 480x360, no cameras.

Subsets (views of DTU scan24): ``6`` = 0, 8, ..., 40; ``10`` = every 5th (0, 5, ..., 45); ``20`` = 20 spread
evenly (``mvsam eval geometry --views 20``); tuning subsets, disjoint from those: ``odd10`` = 2, 7, ..., 47,
``odd6`` = 4, 12, ..., 44. Each subset is written once under ``--root`` as a plain image folder (SfM,
plane-sweep depth and embeddings are cached in it), then ``evaluate_dtu`` runs with reference view 0; the
per-view IoU and each view's share of pixels with depth are printed.

    python benchmarks/bench_sparse.py --subsets 6 10 20 --root $MVSAM_HOME/sparse
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mvsam.evaluate.dtu import evaluate_dtu
from mvsam.evaluate.geometry import choose_views, write_subset
from mvsam.io.loaders import load_scene

SUBSETS = {
    "6": list(range(0, 41, 8)),
    "10": list(range(0, 49, 5)),
    "20": choose_views(49, 1, 20),
    "odd10": list(range(2, 49, 5)),
    "odd6": list(range(4, 45, 8)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dtu_scan24"))
    parser.add_argument("--root", type=Path, required=True, help="folder for the subsets and their caches")
    parser.add_argument("--subsets", nargs="+", default=["6", "10", "20"], choices=list(SUBSETS))
    parser.add_argument("--protocols", nargs="+", default=["clicks"], choices=["clicks", "mask"])
    parser.add_argument("--json", type=Path, default=None, help="write the per-view results here")
    args = parser.parse_args()
    reference = None
    results = {}
    for name in args.subsets:
        folder = args.root / f"dtu{name}"
        if not (folder / "images").is_dir():
            if reference is None:
                reference = load_scene(args.data, cache_dir=args.root / "reference_cache")
            write_subset(reference, args.data, SUBSETS[name], 480, folder)
        report = evaluate_dtu(
            folder, references=[0], protocols=args.protocols, correction=False, progress=False
        )
        scene = load_scene(folder)
        for run in report.runs:
            names = [v.name for v in scene.views if v.name != run.reference]
            print(f"subset {name} ({len(scene.views)} views) {run.protocol}: mIoU {run.ours.iou:.3f}")
            for view_name, value in zip(names, run.view_iou, strict=True):
                print(f"  {view_name} IoU {value:.3f}")
            views = dict(zip(names, run.view_iou, strict=True))
            results[f"{name}/{run.protocol}"] = {"miou": run.ours.iou, "views": views}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(" ".join(f"{k} {v['miou']:.3f}" for k, v in results.items()))
    print("mean over subsets:", f"{np.mean([v['miou'] for v in results.values()]):.3f}")


if __name__ == "__main__":
    main()
