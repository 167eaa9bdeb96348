"""SAM's mask decoder backends on DTU scan 24: seconds per prompt set and masks against the torch decoder.

    python benchmarks/bench_decoder.py --views 8 --repeats 3 --json out.json

Each of the first ``--views`` views gets the prompts the interactive segmenter sends in its later rounds:
the DTU click protocol's 3 positive + 1 negative clicks, the ground-truth mask's box and the low-res
logits of a first decode as a mask prompt. Every backend decodes all of them, one prompt set per pass
(the web app's correction path), ``--repeats`` times in turn; the fastest repeat counts. Low-res masks
(logits > 0) are compared with the torch decoder's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from mvsam.evaluate.dtu import load_ground_truth
from mvsam.evaluate.metrics import iou
from mvsam.evaluate.protocol import protocol_clicks
from mvsam.sam import Prompt, load_predictor
from mvsam.sam.accelerate import build_decoder
from mvsam.scene import Scene

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "dtu_scan24")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx", "openvino", "openvino-bf16"])
    parser.add_argument("--checkpoint", type=Path, default=SHARED / "weights" / "mobile_sam.pt")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scene = Scene.load(args.data)
    predictor = load_predictor(
        "mobile_sam", checkpoint=args.checkpoint, cache_dir=scene.cache_dir / "embeddings", decoder="torch"
    )
    gts = load_ground_truth(args.data, scene)
    requests = []
    for index in range(args.views):
        embedding = predictor.encode(scene.views[index].load_image())
        clicks = protocol_clicks(gts[index])
        rows, cols = np.nonzero(gts[index])
        box = np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float64)
        prompt = Prompt(points=clicks.points, labels=clicks.labels, box=box)
        first = predictor.predict_batch([(embedding, prompt)], return_masks=False)[0]
        prompt.mask_logits = first.low_res_logits[int(np.argmax(first.scores))]
        requests.append((embedding, prompt))
    model, weights_id = predictor.model, predictor.weights_id
    backends = {name: build_decoder(model, "mobile_sam", weights_id, name) for name in args.backends}
    best = dict.fromkeys(backends, float("inf"))
    outputs = {}
    for _ in range(args.repeats):
        for name, backend in backends.items():
            predictor.decoder = backend
            tick = time.perf_counter()
            outputs[name] = predictor.predict_batch(requests, return_masks=False, chunk_size=1)
            best[name] = min(best[name], (time.perf_counter() - tick) / len(requests))
    report = {"views": args.views, "load_average": os.getloadavg(), "backends": {}}
    reference = outputs.get("torch")
    for name, backend in backends.items():
        worst = None
        if reference is not None:
            worst = min(
                iou(mine > 0, theirs > 0)
                for a, b in zip(outputs[name], reference, strict=True)
                for mine, theirs in zip(a.low_res_logits, b.low_res_logits, strict=True)
            )
        seconds = best[name]
        report["backends"][name] = {"name": backend.name, "seconds_per_prompt": seconds, "worst_iou": worst}
        ratio = best["torch"] / best[name] if "torch" in best else float("nan")
        print(
            f"{backend.name:18s} {1000 * best[name]:7.1f} ms per prompt set ({ratio:.2f}x torch); "
            f"worst low-res mask IoU vs torch {worst if worst is None else round(worst, 4)}"
        )
    print(f"load average {report['load_average'][0]:.1f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
