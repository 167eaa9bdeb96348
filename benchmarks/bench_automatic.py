"""Seconds per image of the automatic mask generator: encode vs decode vs post-processing.

    python benchmarks/bench_automatic.py --points 32 16 --json out.json
    python benchmarks/bench_automatic.py --points 16 8 --decoder auto --variants "working raster"

Four variants run one after the other in one process, so their ratio holds on a busy machine:
"before" (every candidate upscaled before the stability filter), "low-res filter" (stability first on the
low-res logits; the same masks), "coarse-to-fine" (plus skip_covered: grid points already explained by
a kept mask are not decoded; the video mode's setting) and "working raster" (plus masks kept on SAM's
256-wide working raster, never upscaled; the multi-view automatic mode's setting, scored against the
annotation shrunk to that raster). ``--decoder auto``: the exported decoder (multi-view automatic mode's).

Images: a 1600x1200 DTU view and an 854x480 DAVIS frame from ../shared/data. The embedding
cache is off, so every run pays for the image encoder once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import mvsam.sam.automatic as automatic
from mvsam.io.images import read_mask_png, read_rgb
from mvsam.sam import load_predictor
from mvsam.sam.automatic import AutomaticMaskGenerator
from mvsam.segment.masks import mask_iou, resize_mask
from mvsam.segment.prompting import working_size

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
IMAGES = {
    "dtu_scan24/000 (1600x1200)": ("dtu_scan24/image/000000.jpg", "dtu_scan24/mask/000.png"),
    "davis/car-turn/00000 (854x480)": (
        "davis2016_train8/JPEGImages/480p/car-turn/00000.jpg",
        "davis2016_train8/Annotations/480p/car-turn/00000.png",
    ),
}


DEFAULT_SLACK = automatic.LOW_RES_STABILITY_SLACK
# (name, low-res stability slack, skip_covered, working_raster); a slack of 1 lets every candidate through
VARIANTS = (
    ("before", 1.0, False, False),
    ("low-res filter", DEFAULT_SLACK, False, False),
    ("coarse-to-fine", DEFAULT_SLACK, True, False),
    ("working raster", DEFAULT_SLACK, True, True),
)


@dataclass
class Row:
    image: str
    variant: str
    points_per_side: int
    masks: int
    points_decoded: int
    encode_s: float
    decode_s: float
    postprocess_s: float
    total_s: float
    cpu_s: float  # process CPU time (user + system, all threads): robust to other jobs on a shared machine
    best_iou_with_annotation: float  # the annotated object, as found among the automatic masks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[32, 16], help="points_per_side values")
    parser.add_argument("--data", type=Path, default=SHARED / "data")
    parser.add_argument("--checkpoint", type=Path, default=SHARED / "weights" / "mobile_sam.pt")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--variants", nargs="+", default=[v[0] for v in VARIANTS], help="which variants")
    parser.add_argument("--images", nargs="+", default=list(IMAGES), help="which images (names above)")
    parser.add_argument(
        "--decoder", default="torch", help="mask decoder backend (torch, auto, onnx, openvino)"
    )
    args = parser.parse_args()

    predictor = load_predictor("mobile_sam", checkpoint=args.checkpoint, cache_dir=None, decoder=args.decoder)
    rows = []
    variants = [v for v in VARIANTS if v[0] in args.variants]
    for name in args.images:
        image_path, truth_path = IMAGES[name]
        image = read_rgb(args.data / image_path)
        truth = read_mask_png(args.data / truth_path)
        for points, (variant, slack, skip, working) in ((p, v) for p in args.points for v in variants):
            automatic.LOW_RES_STABILITY_SLACK = slack
            generator = AutomaticMaskGenerator(
                predictor,
                points_per_side=points,
                skip_covered=skip,
                working_raster=working,
                decode_chunk=predictor.decoder.chunk_size,
            )
            start, cpu_start = time.perf_counter(), time.process_time()
            masks = generator.generate(image)
            total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            automatic.LOW_RES_STABILITY_SLACK = DEFAULT_SLACK
            scored = resize_mask(truth, working_size(truth.shape)) if working else truth
            ious = [mask_iou(m.segmentation, scored) for m in masks]
            timings = generator.last_timings
            row = Row(
                name,
                variant,
                points,
                len(masks),
                timings.points,
                round(timings.encode_s, 2),
                round(timings.decode_s, 2),
                round(timings.postprocess_s, 2),
                round(total, 2),
                round(cpu, 2),
                round(float(max(ious, default=0.0)), 3),
            )
            rows.append(row)
            print(row, flush=True)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "rows": [asdict(r) for r in rows],
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
