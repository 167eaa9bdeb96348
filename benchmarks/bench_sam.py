"""Benchmark the MobileSAM image encoder backends and the mask decoder on real images.

For each encoder variant: median seconds per view (after a warm-up, variants interleaved so that
load from other processes hits them alike), the speed-up over plain float32 eager torch measured
in the same run, one-off build cost (fold/export/compile), and parity with the official
MobileSAM outputs in ``shared/reference`` (embedding max abs error, mask IoU, predicted-IoU error).
Decoder: one prompt, and ``predict_batch`` of 49 prompt sets (a 7x7 grid of points).
``--held-out``: mask agreement of every variant with float32 torch beyond the 8-mask parity set, on 18
images none of the parity set's (7 DAVIS videos x 2 frames, 2 LLFF fern, 2 fox views) x 9 clicks (3x3 grid),
all 3 multimask candidates.

    python benchmarks/bench_sam.py --threads 2 --variants torch,onnx,openvino,openvino-bf16 --json out.json

Variants: the library backends ``torch``, ``torch-fused``, ``onnx``, ``openvino``, ``openvino-bf16``,
``openvino-mixed`` (see mvsam.sam.accelerate) and
three experiments kept here because they lose on parity or cost: ``torch-bf16`` (torch-fused with
bfloat16 autocast in the attention stages), ``torch-compile`` (inductor with freezing) and
``openvino-int8`` (NNCF post-training int8, transformer preset, calibrated on 13 images that are in
neither the parity set, DTU, nor ``--held-out``; ``pip install -e .[quantize]``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mvsam.io.images import read_rgb
from mvsam.sam.accelerate import FusedTorchEncoder, build_encoder, onnx_path
from mvsam.sam.model import Sam, load_sam
from mvsam.sam.predictor import Prompt, SamPredictor, preprocess
from mvsam.sam.weights import read_state_dict, weights_fingerprint
from mvsam.segment.masks import mask_iou

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LIBRARY_VARIANTS = ("torch", "torch-fused", "onnx", "openvino", "openvino-bf16", "openvino-mixed")
EXPERIMENTAL_VARIANTS = ("torch-bf16", "torch-compile", "openvino-int8")
BASELINE = "torch"


@dataclass
class Parity:
    """Agreement with the official outputs over all reference cases and prompts."""

    embedding_max_abs: float
    embedding_mean_abs: float
    min_mask_iou: float
    max_score_error: float


@dataclass
class Agreement:
    """Mask agreement with float32 on held-out images: every candidate, and the best-scored one."""

    masks: int
    mean_iou: float
    min_iou: float
    share_below_099: float
    share_below_09: float
    top_min_iou: float  # SAM's best-scored candidate of each click
    top_share_below_099: float


@dataclass
class VariantResult:
    name: str
    encoder_name: str
    build_seconds: float  # one-off: folding, ONNX export + session, or compile (first call)
    seconds_per_view: dict[str, float] = field(default_factory=dict)  # image label -> median seconds
    all_seconds: dict[str, list[float]] = field(default_factory=dict)
    speedup: dict[str, float] = field(default_factory=dict)  # baseline median / this median
    parity: Parity | None = None
    held_out: Agreement | None = None


@dataclass
class DecoderResult:
    single_prompt_seconds: float
    batch49_seconds: float  # predict_batch of 49 prompt sets, masks at full resolution
    batch49_no_masks_seconds: float  # the same with return_masks=False


class _AutocastStages(nn.Module):
    """Runs a module under bfloat16 autocast and returns float32 (keeps the residual stream fp32)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.module(x).float()


def _bf16_encoder(model: Sam) -> Callable[[torch.Tensor], torch.Tensor]:
    """torch-fused with the attention stages (layers 1-3) in bf16; patch embedding, the conv stage and
    the neck stay fp32 (bf16 there alone costs 1-3e-2 of embedding error)."""
    fused = FusedTorchEncoder(model.image_encoder)
    for index in (1, 2, 3):
        fused.module.layers[index] = _AutocastStages(fused.module.layers[index])
    return fused


def _compiled_encoder(model: Sam) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights and pre-pack them for oneDNN
    fused = FusedTorchEncoder(model.image_encoder)
    compiled = torch.compile(fused.module)

    @torch.no_grad()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return compiled(pixels.contiguous(memory_format=torch.channels_last)).contiguous()

    return encode


def calibration_images() -> list[Path]:
    """``openvino-int8``'s calibration set: LLFF fern, fox and DAVIS frames, none in the parity set, DTU or
    :func:`held_out_images`."""
    davis = SHARED / "data/davis2016_train8/JPEGImages/480p"
    files = sorted((SHARED / "data/llff_fern/images_4").glob("*.png"))[5::5]
    files += sorted((SHARED / "data/ngp_fox/images").glob("*.jpg"))[10::12]
    return files + [davis / sequence / "00010.jpg" for sequence in ("boat", "car-turn", "surf", "tennis")]


def _int8_encoder(model: Sam, weights_id: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The OpenVINO float32 encoder's ONNX export quantised to int8 by NNCF, compiled like ``openvino``."""
    import nncf
    import openvino

    from mvsam.sam.accelerate import OpenVinoEncoder

    build_encoder(model, "mobile_sam", weights_id, "openvino")  # makes sure the export exists
    calibration = [preprocess(read_rgb(path), model)[0].numpy() for path in calibration_images()]
    quantized = nncf.quantize(
        openvino.Core().read_model(str(onnx_path(weights_id, "mobile_sam", model.image_encoder))),
        nncf.Dataset(calibration),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration),
    )
    path = onnx_path(weights_id, "mobile_sam", model.image_encoder, "encoder-int8").with_suffix(".xml")
    openvino.save_model(quantized, path)
    return OpenVinoEncoder(path, "f32")


def build_variant(
    name: str, model: Sam, weights_id: str, example: torch.Tensor, fresh_export: bool
) -> tuple[SamPredictor, float]:
    """Predictor using the variant's encoder, and the one-off cost to get its first output.

    ``fresh_export`` deletes a cached ONNX file first, so that the cost includes the export.
    """
    if name == "onnx" and fresh_export:
        onnx_path(weights_id, "mobile_sam", model.image_encoder).unlink(missing_ok=True)
    start = time.perf_counter()
    if name in LIBRARY_VARIANTS:
        backend = build_encoder(model, "mobile_sam", weights_id, name)
        encoder, encoder_name = backend.encode, backend.name
        expected = {
            "onnx": "onnx-fp32",
            "openvino": "openvino-fp32",
            "openvino-bf16": "openvino-bf16",
            "openvino-mixed": "openvino-mixed",
        }
        if name in expected and not backend.name.startswith(expected[name]):
            raise RuntimeError(f"the {name} backend fell back to {backend.name}; see the warning above")
    elif name == "torch-bf16":
        encoder, encoder_name = _bf16_encoder(model), "torch-bf16"
    elif name == "openvino-int8":
        encoder, encoder_name = _int8_encoder(model, weights_id), "openvino-int8"
    elif name == "torch-compile":
        encoder, encoder_name = _compiled_encoder(model), "torch-compile"
    else:
        raise ValueError(
            f"unknown variant {name!r}; choose from {', '.join(LIBRARY_VARIANTS + EXPERIMENTAL_VARIANTS)}"
        )
    with torch.inference_mode():
        encoder(example)  # first call: compilation / lazy initialisation
    build = time.perf_counter() - start
    predictor = SamPredictor(
        model, "mobile_sam", weights_id, None, encoder=encoder, encoder_name=encoder_name
    )
    return predictor, build


def reference_parity(predictor: SamPredictor, cases: list[dict], reference: dict[str, np.ndarray]) -> Parity:
    """Compare embeddings, masks and predicted IoUs with the official outputs."""
    max_abs, mean_abs, min_iou, max_score = 0.0, [], 1.0, 0.0
    for case in cases:
        predictor.set_image(read_rgb(SHARED / case["image"]))
        features = predictor.embedding.features.numpy()
        error = np.abs(features - reference[f"case{case['case']}_embedding"].astype(np.float32))
        max_abs, mean_abs = max(max_abs, float(error.max())), mean_abs + [float(error.mean())]
        for index, prompt in enumerate(case["prompts"]):
            key = f"case{case['case']}_prompt{index}_"
            masks, scores, _ = predictor.predict(
                np.array(prompt["points"]) if prompt["points"] else None,
                np.array(prompt["labels"]) if prompt["labels"] else None,
                np.array(prompt["box"]) if prompt["box"] else None,
                multimask=prompt["multimask"],
            )
            shape = reference[key + "masks_shape"]
            expected = np.unpackbits(reference[key + "masks_packed"], axis=-1)[..., : shape[-1]]
            expected = expected.astype(bool).reshape(shape)
            for mask, truth in zip(masks, expected, strict=True):
                min_iou = min(min_iou, float((mask & truth).sum() / max((mask | truth).sum(), 1)))
            max_score = max(max_score, float(np.abs(scores - reference[key + "iou"]).max()))
    return Parity(max_abs, float(np.mean(mean_abs)), min_iou, max_score)


def held_out_images() -> list[Path]:
    """Images for ``--held-out``: none of the parity set's (which has DTU view 0 and dog-agility frame 0)."""
    davis = SHARED / "data/davis2016_train8/JPEGImages/480p"
    sequences = ("boat", "car-turn", "motocross-bumps", "rollerblade", "surf", "swing", "tennis")
    files = [davis / sequence / f"{frame:05d}.jpg" for sequence in sequences for frame in (0, 20)]
    files += sorted((SHARED / "data/llff_fern/images_4").glob("*.png"))[:2]
    return files + sorted((SHARED / "data/ngp_fox/images").glob("*.jpg"))[:2]


def held_out_agreement(predictors: dict[str, SamPredictor], images: list[Path]) -> dict[str, Agreement]:
    """Each predictor's masks against the float32 baseline's, for a 3x3 grid of single clicks per image."""
    ious: dict[str, list[float]] = {name: [] for name in predictors if name != BASELINE}
    top: dict[str, list[float]] = {name: [] for name in ious}
    for path in images:
        image = read_rgb(path)
        height, width = image.shape[:2]
        for predictor in predictors.values():
            predictor.set_image(image)
        for y in np.linspace(0, height - 1, 5)[1:-1]:
            for x in np.linspace(0, width - 1, 5)[1:-1]:
                click = (np.array([[x, y]]), np.array([1]))
                expected, expected_scores, _ = predictors[BASELINE].predict(*click, multimask=True)
                for name in ious:
                    masks, scores, _ = predictors[name].predict(*click, multimask=True)
                    ious[name] += [mask_iou(a, b) for a, b in zip(masks, expected, strict=True)]
                    top[name].append(mask_iou(masks[scores.argmax()], expected[expected_scores.argmax()]))
    return {
        name: Agreement(
            len(values),
            float(np.mean(values)),
            float(np.min(values)),
            float(np.mean(np.array(values) < 0.99)),
            float(np.mean(np.array(values) < 0.9)),
            float(np.min(top[name])),
            float(np.mean(np.array(top[name]) < 0.99)),
        )
        for name, values in ious.items()
    }


def time_decoder(predictor: SamPredictor, image: np.ndarray, repeats: int) -> DecoderResult:
    """Median decoder timings on one image (embedding computed once beforehand)."""
    embedding = predictor.encode(image)
    predictor.embedding = embedding
    height, width = image.shape[:2]
    centre = np.array([[width / 2, height / 2]])
    grid = [
        Prompt(points=np.array([[x, y]]), labels=np.array([1]))
        for y in np.linspace(0, height - 1, 9)[1:-1]
        for x in np.linspace(0, width - 1, 9)[1:-1]
    ]
    requests = [(embedding, prompt) for prompt in grid]

    def median_time(call: Callable[[], object]) -> float:
        call()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    return DecoderResult(
        single_prompt_seconds=median_time(lambda: predictor.predict(centre, np.array([1]))),
        batch49_seconds=median_time(lambda: predictor.predict_batch(requests)),
        batch49_no_masks_seconds=median_time(lambda: predictor.predict_batch(requests, return_masks=False)),
    )


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint)
    model = load_sam("mobile_sam", read_state_dict(checkpoint))
    weights_id = weights_fingerprint(checkpoint)
    images = {
        "dtu_1600x1200": read_rgb(SHARED / "data/dtu_scan24/image/000000.jpg"),
        "davis_854x480": read_rgb(SHARED / "data/davis2016_train8/JPEGImages/480p/dog-agility/00000.jpg"),
    }
    pixels = {label: preprocess(image, model)[0] for label, image in images.items()}
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    if BASELINE not in names:
        names.insert(0, BASELINE)
    predictors, results = {}, {}
    for name in names:
        print(f"building {name} ...", file=sys.stderr, flush=True)
        predictors[name], build = build_variant(
            name, model, weights_id, pixels["dtu_1600x1200"], args.fresh_export
        )
        results[name] = VariantResult(name, predictors[name].encoder_name, build)
    with torch.inference_mode():
        for _ in range(args.repeats):  # interleaved: each round times every variant on every image
            for label, tensor in pixels.items():
                for name in names:
                    start = time.perf_counter()
                    predictors[name].encoder(tensor)
                    results[name].all_seconds.setdefault(label, []).append(time.perf_counter() - start)
    for result in results.values():
        for label, times in result.all_seconds.items():
            result.seconds_per_view[label] = statistics.median(times)
            result.speedup[label] = statistics.median(
                results[BASELINE].all_seconds[label]
            ) / statistics.median(times)
    if not args.skip_parity:
        cases = json.loads((SHARED / "reference/mobile_sam_parity.json").read_text())
        reference = dict(np.load(SHARED / "reference/mobile_sam_parity.npz"))
        for name in names:
            results[name].parity = reference_parity(predictors[name], cases, reference)
    if args.held_out:
        for name, agreement in held_out_agreement(predictors, held_out_images()).items():
            results[name].held_out = agreement
    decoder = time_decoder(predictors[BASELINE], images["dtu_1600x1200"], args.repeats)
    return {
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "variants": [asdict(result) for result in results.values()],
        "decoder": asdict(decoder),
    }


def print_report(report: dict) -> None:
    print(f"threads={report['threads']} repeats={report['repeats']} torch={report['torch']}")
    header = f"{'variant':14s} {'build s':>8s} {'DTU s':>7s} {'x':>5s} {'DAVIS s':>8s} {'x':>5s}"
    print(header + f" {'emb max':>8s} {'emb mean':>9s} {'min IoU':>8s} {'score err':>9s}")
    for variant in report["variants"]:
        seconds, speedup = variant["seconds_per_view"], variant["speedup"]
        line = f"{variant['name']:14s} {variant['build_seconds']:8.2f}"
        line += f" {seconds['dtu_1600x1200']:7.3f} {speedup['dtu_1600x1200']:5.2f}"
        line += f" {seconds['davis_854x480']:8.3f} {speedup['davis_854x480']:5.2f}"
        if variant["parity"]:
            parity = variant["parity"]
            line += f" {parity['embedding_max_abs']:8.1e} {parity['embedding_mean_abs']:9.1e}"
            line += f" {parity['min_mask_iou']:8.4f} {parity['max_score_error']:9.1e}"
        print(line)
    for variant in report["variants"]:
        if variant["held_out"]:
            held = variant["held_out"]
            print(
                f"held-out vs float32, {variant['name']}: {held['masks']} candidate masks, "
                f"mean IoU {held['mean_iou']:.4f}, worst {held['min_iou']:.3f}, "
                f"below 0.99 {held['share_below_099']:.1%}, below 0.9 {held['share_below_09']:.1%}; "
                f"best-scored mask worst {held['top_min_iou']:.3f}, "
                f"below 0.99 {held['top_share_below_099']:.1%}"
            )
    decoder = report["decoder"]
    print(
        f"decoder: single prompt {decoder['single_prompt_seconds'] * 1e3:.0f} ms, "
        f"predict_batch x49 {decoder['batch49_seconds'] * 1e3:.0f} ms "
        f"({decoder['batch49_no_masks_seconds'] * 1e3:.0f} ms without full-size masks)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch / ONNX Runtime threads")
    parser.add_argument(
        "--variants",
        default=",".join(LIBRARY_VARIANTS),
        help=f"comma-separated, from {', '.join(LIBRARY_VARIANTS + EXPERIMENTAL_VARIANTS)}",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per variant and image")
    parser.add_argument("--checkpoint", default=str(SHARED / "weights/mobile_sam.pt"))
    parser.add_argument("--fresh-export", action="store_true", help="re-export ONNX to time the export")
    parser.add_argument("--skip-parity", action="store_true", help="timings only")
    parser.add_argument(
        "--held-out", action="store_true", help="mask agreement with float32 on 18 held-out images"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = run(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
