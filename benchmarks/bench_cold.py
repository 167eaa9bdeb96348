"""The cold path on DTU scan24: from raw images and known cameras to the first mask and to all masks.

    python benchmarks/bench_cold.py --json out.json                 # both arms, reference view 0
    python benchmarks/bench_cold.py --arms after --eval --json out.json

Each arm starts from an empty cache folder and times, in order: the first mask (``Segmenter.first_masks``:
the clicked view embedded and decoded with the protocol clicks, candidate chosen by the clicks as
``segment`` chooses it: what a user is shown first), geometry (sparse triangulation, plane-sweep depth),
the other views' SAM embeddings (``Segmenter.prepare``), and the segmentation of all views from the clicks;
clicks -> all masks is their sum. Accuracy rides along: mIoU of the click protocol on the other
views, the ground-truth masks warped through the depth (as in bench_geometry.py) and, with ``--eval``, the
whole ``mvsam eval dtu`` protocol (refs 0/16/32, mask and clicks) on the arm's cache.

Arms: ``before`` is the pipeline as it was (sparse triangulation before plane-sweep at 512 px / 96 planes,
ONNX Runtime encoder); ``mvs512`` is today's defaults with the former plane-sweep (512 px, 96 planes);
``after`` is today's defaults. Arms run one after the other in one process; the load average is printed
with each, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mvsam.evaluate.dtu import evaluate_dtu, load_ground_truth
from mvsam.evaluate.metrics import iou
from mvsam.evaluate.protocol import protocol_clicks
from mvsam.geometry import GeometrySettings, GeometryTimings, MvsSettings, compute_geometry
from mvsam.geometry.metrics import masked_iou, warp_mask
from mvsam.sam import load_predictor
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter
from mvsam.segment.prompts import Click

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SESSION_START_MVS = MvsSettings(resolution=512, num_planes=96)  # plane-sweep defaults before 384 px / 64
ARMS = {
    "before": (GeometrySettings(triangulate=True, mvs=SESSION_START_MVS), "onnx"),
    "mvs512": (GeometrySettings(mvs=SESSION_START_MVS), "auto"),
    "after": (GeometrySettings(), "auto"),
}


@dataclass
class ArmResult:
    name: str
    encoder: str
    load_before: float  # 1-minute load average when the arm started
    seconds: dict[str, float] = field(default_factory=dict)
    clicks_miou: float = float("nan")  # reference view's protocol clicks, other views
    warp_iou_mean: float = float("nan")
    valid_depth_share: float = float("nan")
    eval_means: dict[str, dict[str, float]] = field(default_factory=dict)


def _warp_iou(scene: Scene, gts: list[np.ndarray]) -> float:
    """Mean IoU of ground-truth masks warped into the 4 nearest views through those views' depth."""
    ious = []
    centres = np.array([v.camera.center for v in scene.views])
    for target, view in enumerate(scene.views):
        order = np.argsort(np.linalg.norm(centres - centres[target], axis=1))
        for source in [int(i) for i in order if i != target][:4]:
            warped, valid = warp_mask(gts[source], scene.views[source].camera, view.camera, view.depth)
            ious.append(masked_iou(warped, gts[target], valid))
    return float(np.mean(ious))


def run_arm(name: str, data: Path, reference: int, checkpoint: Path, evaluate: bool) -> ArmResult:
    settings, encoder = ARMS[name]
    with tempfile.TemporaryDirectory(prefix=f"mvsam_cold_{name}_") as folder:
        cache = Path(folder)
        result = ArmResult(name, encoder, os.getloadavg()[0])
        seconds = result.seconds
        tick = time.perf_counter()
        predictor = load_predictor("mobile_sam", checkpoint, cache_dir=cache / "embeddings", encoder=encoder)
        seconds["model_load"] = time.perf_counter() - tick
        result.encoder = predictor.encoder_name
        scene = Scene.load(data, cache_dir=cache)
        gts = load_ground_truth(data, scene)
        clicks = protocol_clicks(gts[reference])
        prompts = [
            Click(reference, float(x), float(y), bool(b))
            for (x, y), b in zip(clicks.points, clicks.labels, strict=True)
        ]
        segmenter = Segmenter(scene, predictor, progress=True)  # loader cameras: no geometry needed yet
        tick = time.perf_counter()  # the user clicks: the clicked view's mask first, alone
        first = segmenter.first_masks(prompts)[reference]
        seconds["first_mask"] = time.perf_counter() - tick
        seconds["first_mask_iou"] = iou(first, gts[reference])
        timings = GeometryTimings()
        tick = time.perf_counter()
        compute_geometry(scene, settings, progress=True, timings=timings)
        seconds["geometry"] = time.perf_counter() - tick
        seconds["triangulation"], seconds["depth"] = timings.cameras, timings.depth

        prepared = segmenter.prepare(first=[reference])
        seconds["embeddings"], seconds["locate"] = prepared.encode, prepared.locate
        tick = time.perf_counter()
        segmenter.segment(prompts)
        predicted = [segmenter.mask(i) for i in range(len(scene.views))]
        seconds["segment"] = time.perf_counter() - tick
        seconds["first_vs_final_iou"] = iou(first, predicted[reference])
        seconds["clicks_to_all_masks"] = sum(
            seconds[k] for k in ("first_mask", "geometry", "embeddings", "locate", "segment")
        )
        others = [i for i in range(len(scene.views)) if i != reference]
        result.clicks_miou = float(np.mean([iou(predicted[i], gts[i]) for i in others]))
        result.warp_iou_mean = _warp_iou(scene, gts)
        result.valid_depth_share = float(np.mean([np.mean(v.depth > 0) for v in scene.views]))
        if evaluate:
            report = evaluate_dtu(
                data, predictor=predictor, geometry=settings, cache_dir=cache, correction=False
            )
            result.eval_means = report.means
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "dtu_scan24")
    parser.add_argument("--arms", default="after,before", help=f"comma-separated, from {', '.join(ARMS)}")
    parser.add_argument("--reference", type=int, default=0, help="clicked view index")
    parser.add_argument("--checkpoint", type=Path, default=SHARED / "weights" / "mobile_sam.pt")
    parser.add_argument("--eval", action="store_true", help="also run the whole mvsam eval dtu protocol")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.arms.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARMS]
    if unknown:
        parser.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    torch.set_num_threads(2)
    results = []
    for name in names:
        results.append(run_arm(name, args.data, args.reference, args.checkpoint, args.eval))
        print(json.dumps(asdict(results[-1])), flush=True)
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    by_name = {r.name: r for r in results}
    both = "before" in by_name and "after" in by_name
    print(f"\n{'stage':<22}" + "".join(f"{r.name:>12}" for r in results) + ("  before/after" if both else ""))
    for key in results[0].seconds:
        line = f"{key:<22}" + "".join(f"{r.seconds[key]:12.3f}" for r in results)
        if both and not key.endswith("iou") and by_name["after"].seconds[key] > 0:
            line += f"  {by_name['before'].seconds[key] / by_name['after'].seconds[key]:8.2f}x"
        print(line)
    for label in ("clicks_miou", "warp_iou_mean", "valid_depth_share", "load_before"):
        print(f"{label:<22}" + "".join(f"{getattr(r, label):12.4f}" for r in results))
    for r in results:
        for protocol, means in r.eval_means.items():
            print(f"eval dtu {r.name:<7} {protocol:<7} mIoU {means['iou']:.4f} mAcc {means['accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
