"""``mvsam eval auto``: automatic mode scored against ground truth, with the protocols of issue 9.

- ``demo``: the bundled scene; every object of ``scene.json`` must carry one id in all views; IoU per object.
- ``dtu``: the id covering the object in view 0 (most of its ground-truth pixels), scored over the other
  views (mIoU); also the best id per view, whose gap to the first is id inconsistency.
- ``davis``: per sequence, the id covering frame 0's annotated object, J&F over every later frame.
- ``consistency``: MastSAM's consistency of the id maps on a scene without ground truth (fern, fox).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from mvsam.commands.common import add_model_arguments
from mvsam.errors import InputError
from mvsam.evaluate.metrics import boundary_f
from mvsam.io.images import list_images, read_mask_png
from mvsam.scene import Scene
from mvsam.segment.auto import AutoConfig, AutoResult, AutoSegmenter, consistency
from mvsam.segment.masks import mask_iou

PROTOCOLS = ("demo", "dtu", "davis", "consistency")


def covering_id(id_map: np.ndarray, truth: np.ndarray) -> int:
    """The id holding most of the ground-truth pixels (0 when none holds any)."""
    values, counts = np.unique(id_map[truth], return_counts=True)
    keep = values > 0
    return int(values[keep][np.argmax(counts[keep])]) if keep.any() else 0


def best_id_iou(id_map: np.ndarray, truth: np.ndarray) -> float:
    """The highest IoU of any single id's region with the ground truth."""
    return max((mask_iou(id_map == k, truth) for k in np.unique(id_map[truth]) if k > 0), default=0.0)


def evaluate_demo(result: AutoResult, scene_dir: Path) -> dict:
    objects = json.loads((scene_dir / "scene.json").read_text())["objects"]
    rows = []
    for obj in objects:
        truths = [
            np.asarray(Image.open(scene_dir / "instance" / f"{v}.png")) == obj["id"]
            for v in range(len(result.scene))
        ]
        ids = [covering_id(result.id_map(v), t) for v, t in enumerate(truths)]
        chosen = ids[0]
        ious = [mask_iou(result.id_map(v) == chosen, t) for v, t in enumerate(truths)]
        rows.append(
            {
                "object": obj["name"],
                "ids": ids,
                "one_id": len(set(ids)) == 1 and chosen > 0,
                "iou": ious,
                "mean_iou": float(np.mean(ious)),
            }
        )
    return {"objects": rows, "all_found_with_one_id": all(r["one_id"] for r in rows)}


def evaluate_dtu(result: AutoResult, data: Path) -> dict:
    scene = result.scene
    truths = [read_mask_png(data / "mask" / f"{int(Path(v.name).stem):03d}.png") for v in scene.views]
    chosen = covering_id(result.id_map(0), truths[0])
    same = [mask_iou(result.id_map(v) == chosen, truths[v]) for v in range(1, len(scene))]
    best = [best_id_iou(result.id_map(v), truths[v]) for v in range(1, len(scene))]
    return {
        "id": chosen,
        "miou_same_id": float(np.mean(same)),
        "miou_best_id_per_view": float(np.mean(best)),
        "iou_same_id": same,
    }


def evaluate_davis_sequence(
    data: Path, name: str, predictor, config: AutoConfig, frames: int | None = None
) -> dict:
    """J&F of the id covering frame 0's annotated object, over the sequence's first ``frames`` frames
    (all when None)."""
    from mvsam.segment.auto_video import VideoAutoSegmenter

    frames_dir = data / "JPEGImages" / "480p" / name
    scene = Scene.load(frames_dir, format="images", cache_dir=scratch_dir() / "davis" / name)
    if frames is not None:
        if frames < 2:
            raise InputError(f"--frames must be >= 2 (frame 0 is not scored), got {frames}")
        scene = Scene(scene.root, scene.views[:frames], scene.source_format, scene.cache_dir)
    result = VideoAutoSegmenter(scene, predictor, config, progress=False).run()
    annotations = {p.stem: p for p in list_images(data / "Annotations" / "480p" / name)}
    truths = [read_mask_png(annotations[v.stem]) for v in scene.views]
    chosen = covering_id(result.id_map(0), truths[0])
    js = [mask_iou(result.id_map(v) == chosen, truths[v]) for v in range(1, len(scene))]
    fs = [boundary_f(result.id_map(v) == chosen, truths[v]) for v in range(1, len(scene))]
    j, f = float(np.mean(js)), float(np.mean(fs))
    return {
        "sequence": name,
        "id": chosen,
        "J": j,
        "F": f,
        "JF": (j + f) / 2,
        "objects": len(result.objects),
        "seconds": result.seconds.total,
        "seconds_per_frame": result.seconds.total / len(scene),
        "keyframe_seconds": result.seconds.keyframe_masks,
        "frames": len(scene),
    }


def spread_subset(scene: Scene, count: int) -> Scene:
    """The scene with ``count`` of its views, evenly spread over its order, view 0 first."""
    if not 2 <= count <= len(scene):
        raise InputError(f"--views must be between 2 and {len(scene)} (the scene's views), got {count}")
    picks = np.unique(np.round(np.linspace(0, len(scene) - 1, count)).astype(int))
    return Scene(scene.root, [scene.views[i] for i in picks], scene.source_format, scene.cache_dir)


def scratch_dir() -> Path:
    """Cache folder for scenes whose own folder is read-only or shared (under ``$MVSAM_HOME``)."""
    from mvsam.cache import mvsam_home

    return mvsam_home() / "eval_auto"


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser("auto", help="automatic mode: ids consistent across views and frames")
    parser.add_argument("protocol", choices=PROTOCOLS, help="which protocol (see mvsam.evaluate.auto)")
    parser.add_argument("--data", type=Path, help="scene folder (dtu, consistency) or DAVIS folder (davis)")
    parser.add_argument("--sequences", nargs="+", help="DAVIS sequences (default: all)")
    parser.add_argument(
        "--points-per-side",
        type=int,
        help=f"automatic-mask grid (default {AutoConfig.points_per_side}; davis: "
        f"{AutoConfig.video_points_per_side})",
    )
    parser.add_argument("--frames", type=int, help="davis: score only the first N frames of each sequence")
    parser.add_argument(
        "--views",
        type=int,
        help="dtu, consistency: run on N views spread evenly over the scene, view 0 first (a quick check; "
        "geometry is still computed from all views)",
    )
    parser.add_argument(
        "--max-objects",
        type=int,
        default=AutoConfig.video_max_objects,
        help="davis: objects present at once in the video mode",
    )
    parser.add_argument(
        "--keyframe-stride",
        type=int,
        default=AutoConfig.video_keyframe_stride,
        help="davis: automatic masks on every n-th frame",
    )
    parser.add_argument("--json", type=Path, default=Path("auto_results.json"), help="where to write results")
    parser.add_argument(
        "--cold", action="store_true", help="keep no embeddings on disk (honest seconds on a re-run)"
    )
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    from mvsam.sam import load_predictor

    # the video mode keeps the torch decoder its numbers were measured with; multi-view decodes exported
    decoder = "torch" if args.protocol == "davis" else "auto"
    predictor = load_predictor(
        args.model, checkpoint=args.checkpoint, cache_dir=not args.cold, decoder=decoder
    )
    grid = {} if args.points_per_side is None else {"points_per_side": args.points_per_side}
    if args.protocol == "davis" and grid:
        grid = {"video_points_per_side": args.points_per_side}
    config = AutoConfig(
        **grid,
        video_max_objects=args.max_objects,
        video_keyframe_stride=args.keyframe_stride,
    )
    config.validate()
    start = time.perf_counter()
    if args.protocol == "davis":
        if args.data is None:
            raise InputError("davis needs --data DAVIS_FOLDER (with JPEGImages/480p and Annotations/480p)")
        names = args.sequences or sorted(p.name for p in (args.data / "JPEGImages" / "480p").iterdir())
        rows = []
        for name in names:
            rows.append(evaluate_davis_sequence(args.data, name, predictor, config, args.frames))
            row = rows[-1]
            print(
                f"{name}: J&F {row['JF']:.3f} (id {row['id']}, {row['objects']} objects), {row['frames']} "
                f"frames in {row['seconds']:.1f} s ({row['seconds_per_frame']:.2f} s/frame)",
                flush=True,
            )
        report = {"sequences": rows, "JF": float(np.mean([r["JF"] for r in rows]))}
    else:
        if args.protocol == "demo":
            from mvsam.demo.run import SCENE_DIR

            scene = Scene.load(SCENE_DIR, cache_dir=scratch_dir() / "demo")
        elif args.data is None:
            raise InputError(f"{args.protocol} needs --data SCENE")
        else:
            scene = Scene.load(args.data)
        scene.geometry()
        if args.views is not None:
            scene = spread_subset(scene, args.views)
        result = AutoSegmenter(scene, predictor, config).run()
        report = {
            "objects": len(result.objects),
            "coverage": result.coverage,
            "consistency": consistency(result),
            "seconds": result.seconds.total,
            "stage_seconds": asdict(result.seconds),
            "keyframes": len(result.keyframes),
            "views": len(scene),
        }
        if args.protocol == "demo":
            report |= evaluate_demo(result, SCENE_DIR)
        elif args.protocol == "dtu":
            report |= evaluate_dtu(result, args.data)
    report["all_seconds"] = time.perf_counter() - start
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, list | dict)}, default=float))
    if "stage_seconds" in report:
        print("seconds per stage:", json.dumps({k: round(v, 1) for k, v in report["stage_seconds"].items()}))
    print(f"wrote {args.json}")
    return 0
