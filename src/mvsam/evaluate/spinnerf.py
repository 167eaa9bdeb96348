"""SPIn-NeRF label propagation: one view's object mask is given, every other labelled view is scored.

Layout read (the public SPIn-NeRF release): ``DIR/<scene>/`` is an LLFF scene (``poses_bounds.npy`` +
``images_4/``) and each view's object mask is a label image in ``images_4/label/`` (or ``label/`` or
``labels/`` beside it) named after the image (``<stem>.png``, also ``<stem>_mask.png``); non-zero pixels
are the object. Masks of another size than the images are resized (nearest). The reference view is the
first labelled view by default. Scores: mean IoU and pixel accuracy over the other labelled views.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.commands.common import add_model_arguments, write_json_report
from mvsam.errors import InputError
from mvsam.evaluate.metrics import iou, pixel_accuracy
from mvsam.geometry import GeometrySettings, compute_geometry
from mvsam.io.images import list_images, read_mask_png
from mvsam.sam.predictor import SamPredictor
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter, SegmenterConfig
from mvsam.segment.prompts import MaskPrompt, UserPrompt

LABEL_FOLDERS = ("images_4/label", "label", "labels")


@dataclass
class SceneScore:
    name: str
    reference: str
    views: int  # views scored
    iou: float
    accuracy: float
    seconds: float  # geometry + segmentation (embeddings from the cache when warm)
    view_iou: dict[str, float]


@dataclass
class BenchmarkReport:
    benchmark: str
    scenes: list[SceneScore]
    iou: float
    accuracy: float

    def table(self) -> str:
        lines = [f"{'scene':<16} {'ref':<14} {'views':>5} {'mIoU':>6} {'mAcc':>6} {'s':>6}"]
        for s in self.scenes:
            lines.append(
                f"{s.name:<16} {s.reference:<14} {s.views:>5d} {s.iou:>6.3f} {s.accuracy:>6.3f} "
                f"{s.seconds:>6.1f}"
            )
        lines.append(f"{'mean':<16} {'':<14} {'':>5} {self.iou:>6.3f} {self.accuracy:>6.3f}")
        return "\n".join(lines)


def read_label(path: Path, width: int, height: int) -> np.ndarray:
    """HxW bool object mask at the image size (nearest resize when the label has another size)."""
    mask = read_mask_png(path)
    if mask.shape != (height, width):
        mask = cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return mask


def find_labels(scene_dir: Path, scene: Scene) -> dict[int, Path]:
    """View index -> label image of the views that have one."""
    for folder in LABEL_FOLDERS:
        if (scene_dir / folder).is_dir():
            files = {}
            for path in list_images(scene_dir / folder):
                stem = path.stem.removesuffix("_mask").lower()
                files.setdefault(stem, path)
            labels = {i: files[v.stem.lower()] for i, v in enumerate(scene.views) if v.stem.lower() in files}
            if labels:
                return labels
            raise InputError(f"{scene_dir / folder} has no label named after any image of {scene_dir}")
    raise FileNotFoundError(f"{scene_dir}: no label folder (looked for {', '.join(LABEL_FOLDERS)})")


def score_propagation(
    name: str,
    scene: Scene,
    reference: int,
    prompts: Sequence[UserPrompt],
    truth: dict[int, np.ndarray],
    predictor: SamPredictor,
    config: SegmenterConfig | None,
    geometry: GeometrySettings | None,
    progress: bool,
) -> SceneScore:
    """Geometry, then segmentation from ``prompts``; IoU/accuracy on the ``truth`` views but the reference."""
    start = time.perf_counter()
    compute_geometry(scene, geometry, progress=progress)
    segmenter = Segmenter(scene, predictor, config, progress=progress)
    segmenter.segment(prompts)
    scored = [i for i in sorted(truth) if i != reference]
    if not scored:
        raise InputError(f"{name}: no labelled view besides the reference to score")
    ious = {scene.views[i].name: iou(segmenter.mask(i), truth[i]) for i in scored}
    accuracy = float(np.mean([pixel_accuracy(segmenter.mask(i), truth[i]) for i in scored]))
    return SceneScore(
        name=name,
        reference=scene.views[reference].name,
        views=len(scored),
        iou=float(np.mean(list(ious.values()))),
        accuracy=accuracy,
        seconds=time.perf_counter() - start,
        view_iou=ious,
    )


def spinnerf_scenes(data: Path) -> list[Path]:
    """Scene folders under ``data`` (each with ``poses_bounds.npy``); ``data`` itself when it is one."""
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"SPIn-NeRF folder not found: {data}")
    if (data / "poses_bounds.npy").is_file():
        return [data]
    scenes = sorted(p for p in data.iterdir() if (p / "poses_bounds.npy").is_file())
    if not scenes:
        raise FileNotFoundError(f"{data}: no scene folders with poses_bounds.npy (SPIn-NeRF layout)")
    return scenes


def evaluate_spinnerf(
    data: str | Path,
    predictor: SamPredictor,
    config: SegmenterConfig | None = None,
    geometry: GeometrySettings | None = None,
    scenes: Sequence[str] | None = None,
    progress: bool = True,
) -> BenchmarkReport:
    """Propagate the first labelled view's mask to the other labelled views of every scene."""
    folders = spinnerf_scenes(Path(data))
    if scenes:
        unknown = set(scenes) - {f.name for f in folders}
        if unknown:
            raise InputError(f"unknown scenes {sorted(unknown)}; have {[f.name for f in folders]}")
        folders = [f for f in folders if f.name in scenes]
    results = []
    for folder in tqdm(folders, desc="SPIn-NeRF scenes", unit="scene", disable=not progress):
        scene = Scene.load(folder, format="llff")
        labels = find_labels(folder, scene)
        truth = {i: read_label(p, scene.views[i].width, scene.views[i].height) for i, p in labels.items()}
        reference = min(i for i, mask in truth.items() if mask.any())
        prompts = [MaskPrompt(reference, truth[reference])]
        results.append(
            score_propagation(
                folder.name, scene, reference, prompts, truth, predictor, config, geometry, progress
            )
        )
    return BenchmarkReport(
        benchmark="spinnerf",
        scenes=results,
        iou=float(np.mean([s.iou for s in results])),
        accuracy=float(np.mean([s.accuracy for s in results])),
    )


def add_scene_benchmark_parser(subparsers, name: str, help_text: str, data_help: str, evaluate) -> None:
    """``mvsam eval NAME --data DIR [--scenes ...]`` for a per-scene benchmark ``evaluate(data, predictor,
    scenes=...) -> BenchmarkReport`` (SPIn-NeRF, NVOS)."""
    parser = subparsers.add_parser(name, help=help_text)
    parser.add_argument("--data", required=True, type=Path, help=data_help)
    parser.add_argument("--scenes", nargs="+", help="scene names (default: all)")
    parser.add_argument(
        "--json", type=Path, default=Path(f"{name}_results.json"), help="where to write results"
    )
    add_model_arguments(parser)

    def run(args) -> int:
        from mvsam.sam import load_predictor

        predictor = load_predictor(args.model, checkpoint=args.checkpoint)
        report = evaluate(args.data, predictor, scenes=args.scenes)
        print(report.table())
        write_json_report(args.json, report)
        return 0

    parser.set_defaults(run=run)


def add_eval_parser(subparsers) -> None:
    add_scene_benchmark_parser(
        subparsers,
        "spinnerf",
        "SPIn-NeRF label propagation (one mask given, mIoU/mAcc)",
        "SPIn-NeRF folder (scene folders) or one scene",
        evaluate_spinnerf,
    )
