"""The ``mvsam demo`` job on the bundled tabletop scene.

It clicks the red sphere once in view 0 and segments it there and, through the scene's 3D geometry,
in every other view; runs the automatic mask generator on view 0; scores everything against the
scene's exact ground truth; and writes masks, overlays, the object's 3D points and a report.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mvsam.export.overlay import draw_points, overlay_masks
from mvsam.export.ply import write_ply
from mvsam.io.images import write_mask_png
from mvsam.sam import load_predictor
from mvsam.sam.automatic import AutomaticMaskGenerator
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter
from mvsam.segment.prompts import Click

SCENE_DIR = Path(__file__).parent / "scene"
HIGHLIGHT = np.array([[0, 230, 255]], dtype=np.uint8)  # cyan: visible on every object of the scene


@dataclass
class DemoReport:
    click_view: str
    click_xy: tuple[int, int]
    click_object: str
    click_score: float  # SAM's predicted IoU of the chosen mask
    click_iou: float  # IoU with the ground-truth instance mask
    multiview_ious: dict[str, float]  # per view: IoU of the propagated mask with the ground truth
    multiview_mean_iou: float
    multiview_s: float  # seconds for the multi-view segmentation (after encoding)
    automatic_masks: int
    automatic_objects_found: int  # ground-truth objects matched by some automatic mask at IoU >= 0.8
    objects: int
    encode_s: float
    decode_s: float
    automatic_s: float
    outputs: list[str]


def load_demo_scene(cache_dir: Path) -> Scene:
    """The bundled scene, with derived files kept in ``cache_dir`` rather than the package folder."""
    return Scene.load(SCENE_DIR, cache_dir=cache_dir)


def ground_truth_instances(view_index: int) -> np.ndarray:
    """HxW uint8 object ids of a bundled view (0 = background)."""
    return np.asarray(Image.open(SCENE_DIR / "instance" / f"{view_index}.png"))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def run_demo(
    out_dir: str | Path,
    model_type: str = "mobile_sam",
    checkpoint: str | Path | None = None,
    points_per_side: int = 16,
) -> DemoReport:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = json.loads((SCENE_DIR / "scene.json").read_text())
    scene = load_demo_scene(out_dir / "cache")
    target = next(obj for obj in info["objects"] if obj["id"] == info["demo_object_id"])
    view_index = scene.view_index(target["click"]["view"])
    view = scene.views[view_index]
    image = view.load_image()
    truth = ground_truth_instances(view_index)

    predictor = load_predictor(model_type, checkpoint, cache_dir=out_dir / "cache" / "embeddings")
    start = time.perf_counter()
    predictor.set_image(image)
    encode_s = time.perf_counter() - start
    click = np.array([[target["click"]["x"], target["click"]["y"]]], dtype=np.float64)
    start = time.perf_counter()
    masks, scores, _ = predictor.predict(points=click, labels=np.array([1]), multimask=True)
    decode_s = time.perf_counter() - start
    best = int(np.argmax(scores))
    mask = masks[best]

    outputs = []
    mask_path = out_dir / "click" / f"{view.stem}.png"
    write_mask_png(mask_path, mask)
    overlay_path = out_dir / "click" / f"{view.stem}_overlay.png"
    Image.fromarray(draw_points(overlay_masks(image, [mask], HIGHLIGHT), click, np.array([1]))).save(
        overlay_path
    )
    outputs += [str(mask_path), str(overlay_path)]

    segmenter = Segmenter(scene, predictor, progress=False)
    segmenter.prepare()  # encodes every view (cached) so the timing below is the 3D propagation itself
    start = time.perf_counter()
    segmenter.segment([Click(view=view.name, x=float(click[0, 0]), y=float(click[0, 1]), positive=True)])
    multiview_s = time.perf_counter() - start
    multiview_ious = {}
    sheet = []
    for index, other in enumerate(scene.views):
        other_mask = segmenter.mask(index)
        write_mask_png(out_dir / "multiview" / "masks" / f"{other.stem}.png", other_mask)
        multiview_ious[other.name] = _iou(other_mask, ground_truth_instances(index) == target["id"])
        sheet.append(overlay_masks(other.load_image(), [other_mask], HIGHLIGHT))
    rows = [np.concatenate(sheet[i : i + 4], axis=1) for i in range(0, len(sheet), 4)]
    rows[-1] = np.pad(rows[-1], ((0, 0), (0, rows[0].shape[1] - rows[-1].shape[1]), (0, 0)))
    sheet_path = out_dir / "multiview" / "all_views.png"
    Image.fromarray(np.concatenate(rows, axis=0)).save(sheet_path)
    points, colors = segmenter.object_points()
    ply_path = out_dir / "multiview" / "object.ply"
    write_ply(ply_path, points, colors)
    outputs += [str(out_dir / "multiview" / "masks"), str(sheet_path), str(ply_path)]

    generator = AutomaticMaskGenerator(predictor, points_per_side=points_per_side, output_mode="binary_mask")
    start = time.perf_counter()
    automatic = generator.generate(image)
    automatic_s = time.perf_counter() - start
    automatic_masks = [m.segmentation for m in automatic]
    auto_overlay = out_dir / "automatic" / f"{view.stem}_overlay.png"
    auto_overlay.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay_masks(image, automatic_masks)).save(auto_overlay)
    records = [
        {"area": m.area, "bbox": list(m.bbox), "predicted_iou": m.predicted_iou,
         "stability_score": m.stability_score, "point_coords": list(m.point_coords)}
        for m in automatic
    ]  # fmt: skip
    (out_dir / "automatic" / f"{view.stem}_masks.json").write_text(json.dumps(records, indent=1))
    outputs += [str(auto_overlay), str(out_dir / "automatic" / f"{view.stem}_masks.json")]
    found = sum(any(_iou(m, truth == obj["id"]) >= 0.8 for m in automatic_masks) for obj in info["objects"])

    report = DemoReport(
        click_view=view.name,
        click_xy=(int(click[0, 0]), int(click[0, 1])),
        click_object=target["name"],
        click_score=float(scores[best]),
        click_iou=_iou(mask, truth == target["id"]),
        multiview_ious=multiview_ious,
        multiview_mean_iou=float(np.mean(list(multiview_ious.values()))),
        multiview_s=multiview_s,
        automatic_masks=len(automatic),
        automatic_objects_found=int(found),
        objects=len(info["objects"]),
        encode_s=encode_s,
        decode_s=decode_s,
        automatic_s=automatic_s,
        outputs=outputs,
    )
    (out_dir / "report.json").write_text(json.dumps(asdict(report), indent=2))
    return report
