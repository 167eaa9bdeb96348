"""NVOS (Neural Volumetric Object Selection): scribbles on a reference view, one target view scored.

Layout read (the public NVOS release), under ``DIR`` or ``DIR/labels``: ``reference_image/<scene>/<name>``
(the scribbled view, named like a scene image), ``scribbles/<scene>/`` with a positive and a negative
scribble image (file names containing ``pos`` and ``neg``), and ``masks/<scene>/<target>_mask.png`` (or
``<target>.png``): the target view's ground truth. The scene itself is an LLFF folder
``DIR/scenes/<scene>/`` (or ``DIR/<scene>/``) with ``poses_bounds.npy`` and ``images_4/``. Scribbles and
masks drawn at another resolution than the loaded images are resized. Scribbles become clicks with
:func:`~mvsam.evaluate.protocol.scribble_clicks`. Scores: IoU and pixel accuracy on the target view.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.errors import InputError
from mvsam.evaluate.protocol import scribble_clicks
from mvsam.evaluate.spinnerf import (
    BenchmarkReport,
    add_scene_benchmark_parser,
    read_label,
    score_propagation,
)
from mvsam.geometry import GeometrySettings
from mvsam.io.images import list_images
from mvsam.sam.predictor import SamPredictor
from mvsam.scene import Scene
from mvsam.segment.interactive import SegmenterConfig
from mvsam.segment.prompts import Click

LABEL_KINDS = ("reference_image", "scribbles", "masks")


def _labels_root(data: Path) -> Path:
    for root in (data, data / "labels"):
        if all((root / kind).is_dir() for kind in LABEL_KINDS):
            return root
    raise FileNotFoundError(
        f"{data} is not an NVOS folder: expected {', '.join(LABEL_KINDS)} (or labels/ with them)"
    )


def nvos_scenes(data: Path) -> list[str]:
    """Names of the scenes that have a reference image."""
    root = _labels_root(Path(data))
    return sorted(p.name for p in (root / "reference_image").iterdir() if p.is_dir())


def _scene_dir(data: Path, name: str) -> Path:
    for candidate in (data / "scenes" / name, data / name):
        if (candidate / "poses_bounds.npy").is_file():
            return candidate
    raise FileNotFoundError(
        f"NVOS scene {name!r}: no LLFF folder at {data / 'scenes' / name} or {data / name}"
    )


def _view_by_stem(scene: Scene, stem: str, what: str) -> int:
    stem = stem.lower()
    for index, view in enumerate(scene.views):
        if view.stem.lower() == stem:
            return index
    raise InputError(f"{what} {stem!r} names no image of the scene ({scene.views[0].name}, ...)")


def _one(files: list[Path], word: str, folder: Path) -> Path:
    matches = [p for p in files if word in p.stem.lower()]
    if len(matches) != 1:
        raise InputError(f"{folder}: expected one scribble with {word!r} in its name, found {len(matches)}")
    return matches[0]


def load_nvos_scene(data: Path, name: str) -> tuple[Scene, int, int, list[Click], np.ndarray]:
    """(scene, reference index, target index, clicks on the reference, target's HxW bool mask)."""
    root = _labels_root(data)
    scene = Scene.load(_scene_dir(data, name), format="llff")
    references = list_images(root / "reference_image" / name)
    if len(references) != 1:
        raise InputError(
            f"{root / 'reference_image' / name}: expected one reference image, found {len(references)}"
        )
    reference = _view_by_stem(scene, references[0].stem, "reference image")
    scribbles = list_images(root / "scribbles" / name)
    view = scene.views[reference]
    positive = read_label(_one(scribbles, "pos", root / "scribbles" / name), view.width, view.height)
    negative = read_label(_one(scribbles, "neg", root / "scribbles" / name), view.width, view.height)
    clicks = scribble_clicks(positive, negative)
    masks = list_images(root / "masks" / name)
    if len(masks) != 1:
        raise InputError(f"{root / 'masks' / name}: expected one target mask, found {len(masks)}")
    target = _view_by_stem(scene, masks[0].stem.removesuffix("_mask"), "target mask")
    if target == reference:
        raise InputError(f"NVOS scene {name!r}: the target view is the reference view")
    truth = read_label(masks[0], scene.views[target].width, scene.views[target].height)
    prompts = [
        Click(reference, float(x), float(y), bool(label))
        for (x, y), label in zip(clicks.points, clicks.labels, strict=True)
    ]
    return scene, reference, target, prompts, truth


def evaluate_nvos(
    data: str | Path,
    predictor: SamPredictor,
    config: SegmenterConfig | None = None,
    geometry: GeometrySettings | None = None,
    scenes: Sequence[str] | None = None,
    progress: bool = True,
) -> BenchmarkReport:
    """Scribbles on each scene's reference view, IoU/accuracy on its target view."""
    data = Path(data)
    names = nvos_scenes(data)
    if scenes:
        unknown = set(scenes) - set(names)
        if unknown:
            raise InputError(f"unknown scenes {sorted(unknown)}; have {names}")
        names = [n for n in names if n in scenes]
    results = []
    for name in tqdm(names, desc="NVOS scenes", unit="scene", disable=not progress):
        scene, reference, target, prompts, truth = load_nvos_scene(data, name)
        results.append(
            score_propagation(
                name, scene, reference, prompts, {target: truth}, predictor, config, geometry, progress
            )
        )
    return BenchmarkReport(
        benchmark="nvos",
        scenes=results,
        iou=float(np.mean([s.iou for s in results])),
        accuracy=float(np.mean([s.accuracy for s in results])),
    )


def add_eval_parser(subparsers) -> None:
    add_scene_benchmark_parser(
        subparsers,
        "nvos",
        "NVOS: scribbles on a reference view, IoU on the target view",
        "NVOS folder (scenes/ + label folders)",
        evaluate_nvos,
    )
