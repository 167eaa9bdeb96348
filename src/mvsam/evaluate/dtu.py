"""Multi-view object segmentation on DTU (NeuS/IDR layout with ``mask/``), the protocol of
``shared/data/README.md``.

One reference view gets the prompt; every other view is scored against its ground-truth mask (IoU, pixel
accuracy, precision, recall, boundary F; MastSAM's consistency beside them). Prompt kinds: ``mask`` (the
reference view's ground-truth mask) and ``clicks`` (:func:`~mvsam.evaluate.protocol.protocol_clicks`: 3
positive clicks + 1 negative). Two baselines run on the same views: ``same_pixel`` (SAM with the reference
clicks reused at the same pixels in every view, no geometry) and ``projection`` (the reference mask
carried once through the geometry, no SAM, no iteration: :func:`projection_baseline`). After the click
protocol, one simulated correction click (:func:`~mvsam.evaluate.protocol.correction_click` on the worst
view) is timed.
Ground truth is used only for the prompts and the scores, never inside the segmenter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.commands.common import add_model_arguments, write_json_report
from mvsam.errors import InputError
from mvsam.evaluate.metrics import boundary_f, iou, multiview_consistency, pixel_accuracy, precision, recall
from mvsam.evaluate.protocol import correction_click, protocol_clicks
from mvsam.geometry import GeometrySettings, GeometryTimings, compute_geometry
from mvsam.io.images import list_images, read_mask_png
from mvsam.lift.project import unproject_pixels, visible_mask
from mvsam.sam.predictor import Prompt, SamPredictor
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter, SegmenterConfig
from mvsam.segment.prompts import Click, MaskPrompt

PROTOCOLS = ("mask", "clicks")


@dataclass
class Scores:
    """Means over the scored views."""

    iou: float
    accuracy: float
    precision: float
    recall: float
    boundary_f: float


@dataclass
class RunScore:
    """One protocol from one reference view."""

    protocol: str
    reference: str
    views: int  # views scored (all but the reference)
    ours: Scores
    same_pixel: Scores  # baseline: the reference clicks reused at the same pixels everywhere
    projection: Scores  # baseline: the reference mask projected once, no SAM
    consistency: float  # MastSAM's score of our working masks
    iterations: int
    converged: bool
    seconds: float  # segment() wall time (warm embeddings)
    view_iou: list[float]  # per scored view, ours
    correction_seconds: float | None = None  # one correction click, all views updated (clicks protocol)
    corrected_iou: float | None = None  # mean IoU after that click


@dataclass
class DtuReport:
    scene: str
    runs: list[RunScore]
    means: dict[str, dict[str, float]]  # protocol -> {ours, same_pixel, projection, accuracy, ...}
    gt_consistency: float  # the ground-truth masks' consistency under this geometry (an upper bound)
    seconds: dict[str, float] = field(default_factory=dict)  # load, geometry, embeddings, total

    def table(self) -> str:
        head = f"{'protocol':<8} {'ref':<12} {'mIoU':>6} {'mAcc':>6} {'bF':>6} {'cons':>6} {'it':>3} "
        head += f"{'s':>6} | {'same-px':>7} {'proj':>6} | {'corr s':>6} {'IoU+1':>6}"
        lines = [head]
        for run in self.runs:
            corr = (
                ""
                if run.correction_seconds is None
                else f"{run.correction_seconds:>6.2f} {run.corrected_iou:>6.3f}"
            )
            lines.append(
                f"{run.protocol:<8} {run.reference:<12} {run.ours.iou:>6.3f} {run.ours.accuracy:>6.3f} "
                f"{run.ours.boundary_f:>6.3f} {run.consistency:>6.3f} {run.iterations:>3d} "
                f"{run.seconds:>6.1f} | "
                f"{run.same_pixel.iou:>7.3f} {run.projection.iou:>6.3f} | {corr}"
            )
        for protocol, mean in self.means.items():
            lines.append(
                f"{protocol:<8} {'mean':<12} {mean['iou']:>6.3f} {mean['accuracy']:>6.3f} "
                f"{mean['boundary_f']:>6.3f} {mean['consistency']:>6.3f} {'':>3} {mean['seconds']:>6.1f} | "
                f"{mean['same_pixel_iou']:>7.3f} {mean['projection_iou']:>6.3f} |"
            )
        lines.append(f"ground-truth masks' consistency under this geometry: {self.gt_consistency:.3f}")
        lines.append("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items()))
        return "\n".join(lines)


def load_ground_truth(data: Path, scene: Scene) -> list[np.ndarray]:
    """HxW bool object mask per view from ``data/mask/`` (the i-th mask file belongs to the i-th image)."""
    folder = data / "mask"
    if not folder.is_dir():
        raise FileNotFoundError(f"{data} has no mask/ folder with ground-truth masks")
    files = list_images(folder)
    if len(files) != len(scene.views):
        raise InputError(f"{folder} has {len(files)} masks for {len(scene.views)} images")
    masks = []
    for path, view in zip(files, scene.views, strict=True):
        mask = read_mask_png(path)
        if mask.shape != (view.height, view.width):
            raise InputError(
                f"{path} is {mask.shape[1]}x{mask.shape[0]}, image {view.name} is {view.width}x{view.height}"
            )
        masks.append(mask)
    return masks


def as_plain_photos(scene: Scene) -> Scene:
    """The same images (same order and names) loaded as a plain folder of photos: no cameras, no depth,
    so ``compute_geometry`` runs SfM. Shares ``scene``'s cache folder."""
    folder = scene.views[0].image_path.parent.resolve()
    photos = Scene.load(
        scene.root,
        format="images",
        image_subdir=str(folder.relative_to(Path(scene.root).resolve())),
        cache_dir=scene.cache_dir,
    )
    if [v.name for v in photos.views] != [v.name for v in scene.views]:
        raise InputError(f"{folder} holds other images than the scene's views; cannot drop its cameras")
    return photos


def _scores(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> Scores:
    return Scores(
        iou=float(np.mean([iou(p, g) for p, g in zip(preds, gts, strict=True)])),
        accuracy=float(np.mean([pixel_accuracy(p, g) for p, g in zip(preds, gts, strict=True)])),
        precision=float(np.mean([precision(p, g) for p, g in zip(preds, gts, strict=True)])),
        recall=float(np.mean([recall(p, g) for p, g in zip(preds, gts, strict=True)])),
        boundary_f=float(np.mean([boundary_f(p, g) for p, g in zip(preds, gts, strict=True)])),
    )


def projection_baseline(segmenter: Segmenter, reference: int, mask: np.ndarray) -> list[np.ndarray]:
    """The reference mask carried once through the geometry, without SAM: HxW bool per view.

    The mask's pixels (at the working raster) are unprojected with the reference depth, z-buffer tested
    against each view's depth, and the pixels they land on are closed with a 5x5 kernel to fill the gaps
    between samples, then upsampled (nearest) to the image size.
    """
    camera, depth = segmenter.working_view(reference)
    width, height = segmenter.working_size(reference)
    small = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    points = unproject_pixels(camera, depth, small)
    masks = []
    for index, view in enumerate(segmenter.scene.views):
        camera, depth = segmenter.working_view(index)
        if camera is None or depth is None:
            masks.append(np.zeros((view.height, view.width), dtype=bool))
            continue
        visibility = visible_mask(camera, depth, points, rel_tol=0.01)
        hit = np.zeros(depth.size, dtype=np.uint8)
        hit[visibility.pixel[visibility.visible]] = 1
        hit = cv2.morphologyEx(hit.reshape(depth.shape), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        masks.append(cv2.resize(hit, (view.width, view.height), interpolation=cv2.INTER_NEAREST).astype(bool))
    return masks


def same_pixel_baseline(
    predictor: SamPredictor,
    segmenter: Segmenter,
    points: np.ndarray,
    labels: np.ndarray,
    views: Sequence[int],
) -> list[np.ndarray]:
    """SAM in each view with the same clicks at the same pixels (one output, as for several clicks)."""
    requests = [(segmenter.embedding(i), Prompt(points=points, labels=labels)) for i in views]
    return [p.masks[0] for p in predictor.predict_batch(requests, multimask=False)]


def _consistency(segmenter: Segmenter, masks: Sequence[np.ndarray], neighbours: int = 3) -> float:
    """MastSAM's score at the working raster over pairs of views up to ``neighbours`` apart (both ways)."""
    count = len(masks)
    cameras, depths, labels, keep = [], [], [], []
    for index, mask in enumerate(masks):
        camera, depth = segmenter.working_view(index)
        if camera is None or depth is None:
            continue
        width, height = segmenter.working_size(index)
        small = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(
            bool
        )
        cameras.append(camera)
        depths.append(depth)
        labels.append(small)
        keep.append(index)
    count = len(keep)
    pairs = [(a, b) for a in range(count) for b in range(count) if a != b and abs(a - b) <= neighbours]
    return multiview_consistency(cameras, depths, labels, pairs=pairs, stride=2).score


def evaluate_dtu(
    data: str | Path,
    references: Sequence[int] = (0, 16, 32),
    predictor: SamPredictor | None = None,
    config: SegmenterConfig | None = None,
    geometry: GeometrySettings | None = None,
    protocols: Sequence[str] = PROTOCOLS,
    correction: bool = True,
    progress: bool = True,
    cache_dir: str | Path | None = None,
    plain_photos: bool = False,
) -> DtuReport:
    """Run the DTU protocol on the scene at ``data`` from each reference view index; see the module doc.

    ``cache_dir`` overrides the scene's cache folder (geometry and, without a ``predictor``, embeddings).
    ``plain_photos`` ignores the dataset's cameras: its images are loaded as a plain folder of photos, so
    SfM (``geometry.sfm``) gives them cameras.
    """
    start = time.perf_counter()
    data = Path(data)
    for protocol in protocols:
        if protocol not in PROTOCOLS:
            raise InputError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    scene = Scene.load(data, cache_dir=None if cache_dir is None else Path(cache_dir))
    if plain_photos:
        scene = as_plain_photos(scene)
    seconds = {"load": time.perf_counter() - start}
    gts = load_ground_truth(data, scene)
    for reference in references:
        if not 0 <= reference < len(scene.views):
            raise InputError(f"reference view {reference} is out of range 0..{len(scene.views) - 1}")
    tick = time.perf_counter()
    timings = GeometryTimings()
    compute_geometry(scene, geometry, progress=progress, timings=timings)
    seconds["geometry"] = time.perf_counter() - tick
    if predictor is None:
        from mvsam.sam import load_predictor

        predictor = load_predictor("mobile_sam", cache_dir=scene.cache_dir / "embeddings")
    segmenter = Segmenter(scene, predictor, config, progress=progress)
    prepared = segmenter.prepare()
    seconds["embeddings"] = prepared.encode
    seconds["locate"] = prepared.locate
    runs: list[RunScore] = []
    for reference in tqdm(references, desc="reference views", unit="view", disable=not progress):
        others = [i for i in range(len(scene.views)) if i != reference]
        clicks = protocol_clicks(gts[reference])
        baseline = same_pixel_baseline(predictor, segmenter, clicks.points, clicks.labels, others)
        same_pixel = _scores(baseline, [gts[i] for i in others])
        for protocol in protocols:
            if protocol == "mask":
                prompts = [MaskPrompt(reference, gts[reference])]
            else:
                prompts = [
                    Click(reference, float(x), float(y), bool(label))
                    for (x, y), label in zip(clicks.points, clicks.labels, strict=True)
                ]
            tick = time.perf_counter()
            result = segmenter.segment(prompts)
            masks = [segmenter.mask(i) for i in range(len(scene.views))]
            elapsed = time.perf_counter() - tick
            projected = projection_baseline(segmenter, reference, masks[reference])
            projected = [projected[i] for i in others]
            run = RunScore(
                protocol=protocol,
                reference=scene.views[reference].name,
                views=len(others),
                ours=_scores([masks[i] for i in others], [gts[i] for i in others]),
                same_pixel=same_pixel,
                projection=_scores(projected, [gts[i] for i in others]),
                consistency=_consistency(segmenter, masks),
                iterations=result.iterations,
                converged=result.converged,
                seconds=elapsed,
                view_iou=[iou(masks[i], gts[i]) for i in others],
            )
            if correction and protocol == "clicks":
                worst = others[int(np.argmin(run.view_iou))]
                click = correction_click(masks[worst], gts[worst])
                if click is not None:
                    tick = time.perf_counter()
                    segmenter.add_prompts([Click(worst, click.x, click.y, click.positive)])
                    run.correction_seconds = time.perf_counter() - tick
                    run.corrected_iou = float(np.mean([iou(segmenter.mask(i), gts[i]) for i in others]))
            runs.append(run)
    means = {}
    for protocol in protocols:
        chosen = [r for r in runs if r.protocol == protocol]
        means[protocol] = {
            "iou": float(np.mean([r.ours.iou for r in chosen])),
            "accuracy": float(np.mean([r.ours.accuracy for r in chosen])),
            "boundary_f": float(np.mean([r.ours.boundary_f for r in chosen])),
            "consistency": float(np.mean([r.consistency for r in chosen])),
            "same_pixel_iou": float(np.mean([r.same_pixel.iou for r in chosen])),
            "projection_iou": float(np.mean([r.projection.iou for r in chosen])),
            "seconds": float(np.mean([r.seconds for r in chosen])),
        }
    seconds["total"] = time.perf_counter() - start
    return DtuReport(
        scene=str(data),
        runs=runs,
        means=means,
        gt_consistency=_consistency(segmenter, gts),
        seconds=seconds,
    )


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "dtu", help="multi-view object segmentation on a DTU scan (mask and click prompts)"
    )
    parser.add_argument(
        "--data", required=True, type=Path, help="DTU scan in the NeuS layout (image/, mask/, cameras)"
    )
    parser.add_argument("--refs", type=int, nargs="+", default=[0, 16, 32], help="reference view indices")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--json", type=Path, default=Path("dtu_results.json"), help="where to write results")
    add_model_arguments(parser)
    parser.add_argument("--iterations", type=int, default=SegmenterConfig.max_iterations, help="max rounds")
    parser.add_argument("--no-correction", action="store_true", help="skip the timed correction click")
    parser.add_argument(
        "--no-cameras",
        action="store_true",
        help="ignore the dataset's cameras: segment its images as plain photos, with cameras from SfM",
    )
    parser.add_argument(
        "--mesh",
        action="store_true",
        help="instead: clicks on the first --refs view, the object mesh, its silhouette IoU in every view",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    from mvsam.sam import load_predictor

    scene = Scene.load(args.data)
    predictor = load_predictor(
        args.model, checkpoint=args.checkpoint, cache_dir=scene.cache_dir / "embeddings"
    )
    if args.mesh:
        from mvsam.evaluate.dtu_mesh import evaluate_dtu_mesh

        score = evaluate_dtu_mesh(
            args.data, args.refs[0], predictor, SegmenterConfig(max_iterations=args.iterations)
        )
        print(score.table())
        write_json_report(args.json, score)
        return 0
    report = evaluate_dtu(
        args.data,
        references=args.refs,
        predictor=predictor,
        config=SegmenterConfig(max_iterations=args.iterations),
        protocols=args.protocols,
        correction=not args.no_correction,
        plain_photos=args.no_cameras,
    )
    print(report.table())
    write_json_report(args.json, report)
    return 0
