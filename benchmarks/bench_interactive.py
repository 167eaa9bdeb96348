"""Interactive multi-view segmentation on DTU scan 24: accuracy, baselines and seconds per stage.

    python benchmarks/bench_interactive.py --refs 0 16 32 --json out.json          # warm cache
    python benchmarks/bench_interactive.py --refs 0 16 32 --cold --json out.json   # from raw images

Runs the DTU protocol of ../shared/data/README.md (``mvsam.evaluate.dtu``): mask and click prompts on
each reference view, every other view scored, the same-pixel-clicks and single-projection baselines
beside it, and one simulated correction click per click run (seconds for all views to update, and the
full-resolution masks of every view after it). ``--cold`` uses a fresh cache folder, so SfM points, MVS
depth and the 49 SAM embeddings are all computed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from mvsam.evaluate.dtu import evaluate_dtu
from mvsam.sam import load_predictor
from mvsam.scene import Scene
from mvsam.segment.interactive import SegmenterConfig

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "dtu_scan24")
    parser.add_argument("--refs", type=int, nargs="+", default=[0, 16, 32])
    parser.add_argument("--iterations", type=int, default=SegmenterConfig.max_iterations)
    parser.add_argument(
        "--cold", action="store_true", help="fresh cache: geometry and embeddings from scratch"
    )
    parser.add_argument("--checkpoint", type=Path, default=SHARED / "weights" / "mobile_sam.pt")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mvsam_bench_") as fresh:
        cache_dir = Path(fresh) if args.cold else Scene.load(args.data).cache_dir
        predictor = load_predictor(
            "mobile_sam", checkpoint=args.checkpoint, cache_dir=cache_dir / "embeddings"
        )
        report = evaluate_dtu(
            args.data,
            references=args.refs,
            predictor=predictor,
            config=SegmenterConfig(max_iterations=args.iterations),
            cache_dir=cache_dir,
        )
    wall = time.perf_counter() - start
    print(report.table())
    corrections = [r.correction_seconds for r in report.runs if r.correction_seconds is not None]
    if corrections:
        print(f"correction click, all views updated: {min(corrections):.2f}-{max(corrections):.2f} s")
    print(f"{'cold' if args.cold else 'warm'} cache, whole benchmark: {wall:.1f} s")
    if args.json:
        meta = {
            "cold": args.cold,
            "wall_s": wall,
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "report": asdict(report)}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
