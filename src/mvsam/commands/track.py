"""``mvsam track VIDEO --prompt ... --out OUT``: follow one object through a video or a frame folder.

When VIDEO is a static multi-view scene with cameras (any layout ``Scene.load`` reads with cameras, e.g.
DTU, COLMAP, LLFF), the object is carried between views by 3D (cameras and depth from ``scene.geometry()``,
cached) instead of optical flow; ``--no-geometry`` turns that off. Frame indices are then view indices.

Writes ``OUT/masks/<frame stem>.png`` (uint8 0/255, frame size) for every frame and ``OUT/report.json``
(per frame: score, present, how it was found; overall fps).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.cache import atomic_write_bytes, hash_file
from mvsam.commands.common import add_model_arguments, check_output_folder, clear_outputs, write_overlays
from mvsam.errors import InputError
from mvsam.export.result import source_record
from mvsam.io.images import write_mask_png
from mvsam.io.video import FolderFrames, FrameSource, open_frames
from mvsam.scene import Scene, resolve_view
from mvsam.segment.prompts import (
    BoxPrompt,
    Click,
    MaskPrompt,
    UserPrompt,
    parse_box,
    parse_mask_prompt,
    parse_point_or_box,
)
from mvsam.segment.track import Tracker, TrackerConfig, TrackPrompt, validate_prompt


def build_prompt(prompts: list[UserPrompt], names: list[str]) -> TrackPrompt:
    """One :class:`TrackPrompt` from parsed prompts, all on one frame; frames are named like views
    (file name, stem, else 0-based index; ``names`` are the frames' names)."""
    if not prompts:
        raise InputError(
            "no prompt: give --prompt 'frame=0,x=..,y=..', --box or --mask-prompt 'frame=0,path=m.png'"
        )
    frames = {resolve_view(names, prompt.view, "frame") for prompt in prompts}
    if len(frames) > 1:
        raise InputError(f"all prompts must be on one frame, got frames {sorted(frames)}")
    frame = frames.pop()
    masks = [p for p in prompts if isinstance(p, MaskPrompt)]
    if masks:
        if len(prompts) > 1:
            raise InputError("give either clicks/a box or one --mask-prompt, not both")
        return TrackPrompt(frame=frame, mask=masks[0].mask)
    clicks = [p for p in prompts if isinstance(p, Click)]
    boxes = [p for p in prompts if isinstance(p, BoxPrompt)]
    if len(boxes) > 1:
        raise InputError("give at most one box prompt")
    points = np.array([[c.x, c.y] for c in clicks], dtype=np.float64) if clicks else None
    labels = np.array([int(c.positive) for c in clicks], dtype=np.int64) if clicks else None
    box = boxes[0].as_array() if boxes else None
    return TrackPrompt(frame=frame, points=points, labels=labels, box=box)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("track", help="track one object through a video or a folder of frames")
    parser.add_argument(
        "video", type=Path, help="video file, folder of frames, or a static scene with cameras (uses 3D)"
    )
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="SPEC",
        help="'frame=0,x=..,y=..,label=1' (repeatable) or a box 'frame=0,x0=..,y0=..,x1=..,y1=..'; "
        "frame= takes a file name, stem or 0-based index (view= works too)",
    )
    parser.add_argument(
        "--box", action="append", default=[], metavar="SPEC", help="'frame=0,x0=..,y0=..,x1=..,y1=..'"
    )
    parser.add_argument(
        "--mask-prompt",
        action="append",
        default=[],
        metavar="SPEC",
        help="'frame=0,path=mask.png[,object=ID]'",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder: masks/, report.json")
    parser.add_argument("--overlay", action="store_true", help="also write overlays/<frame>.jpg")
    add_model_arguments(parser)
    parser.add_argument(
        "--sam-every", type=int, default=TrackerConfig.sam_every, help="SAM on every k-th frame"
    )
    parser.add_argument(
        "--no-geometry", action="store_true", help="a scene with cameras is tracked by optical flow only"
    )
    parser.set_defaults(run=run)


def static_scene(path: Path) -> Scene | None:
    """The scene at ``path`` when it is a folder that loads with cameras for every view, else None."""
    if not path.is_dir():
        return None
    try:
        scene = Scene.load(path)
    except ValueError:
        return None  # a layout no loader reads: plain frames
    return scene if scene.source_format != "images" and scene.has_cameras else None


def scene_frames(scene: Scene) -> FolderFrames:
    """The scene's views as frames, in view order; all views must have one size."""
    sizes = {(view.height, view.width) for view in scene.views}
    if len(sizes) > 1:
        raise InputError(f"{scene.root}: views have different sizes {sorted(sizes)}; tracking needs one size")
    return FolderFrames([view.image_path for view in scene.views], sizes.pop())


def _source(args, scene: Scene | None, prompts: list[UserPrompt]) -> dict:
    """What ``mvsam export`` needs to re-open the frames: the scene record of the tracked input."""
    from mvsam.sam.weights import resolve_checkpoint

    specs = [*args.prompt, *args.box, *args.mask_prompt]
    records = [{"kind": type(p).__name__, "spec": spec} for p, spec in zip(prompts, specs, strict=True)]
    checkpoint = resolve_checkpoint(args.model, args.checkpoint)
    if scene is None:
        try:
            scene = Scene.load(args.video)  # a video's frames or a frame folder, as export will read them
        except ValueError:  # e.g. a single frame: no scene to re-open, only the path
            return {
                "command": "track",
                "scene": str(Path(args.video).absolute()),
                "object_ids": [1],
                "prompts": records,
                "model": args.model,
                "checkpoint_sha256": hash_file(checkpoint),
            }
    return source_record(
        scene, "track", object_ids=[1], prompts=records, model=args.model, checkpoint=checkpoint
    )


OUTPUTS = ["masks", "overlays", "report.json"]


def run(args) -> int:
    from mvsam.sam import load_predictor

    prompts = [parse_point_or_box(text) for text in args.prompt] + [parse_box(text) for text in args.box]
    prompts += [parse_mask_prompt(text) for text in args.mask_prompt]
    if args.sam_every < 1:
        raise InputError(f"--sam-every must be >= 1, got {args.sam_every}")
    config = TrackerConfig(sam_every=args.sam_every)
    out = check_output_folder(args.out)
    scene = None if args.no_geometry else static_scene(args.video)
    frames: FrameSource = open_frames(args.video) if scene is None else scene_frames(scene)
    names = [path.name for path in frames.paths] if isinstance(frames, FolderFrames) else frames.stems
    prompt = build_prompt(prompts, names)
    validate_prompt(prompt, frames)
    tracker = Tracker(load_predictor(args.model, checkpoint=args.checkpoint), config)
    if scene is not None:
        print(f"{args.video}: a static scene with cameras ({scene.source_format}); tracking by 3D geometry")
        scene = scene.geometry()
    stems = frames.stems
    records = {}
    clear_outputs(out, OUTPUTS)
    start = time.perf_counter()
    for result in tqdm(
        tracker.track(frames, prompt, scene=scene), total=len(frames), desc="tracking", unit="frame"
    ):
        stem = stems[result.index]
        write_mask_png(out / "masks" / f"{stem}.png", result.mask)
        records[result.index] = {
            "frame": stem,
            "index": result.index,
            "score": round(result.score, 4),
            "present": result.present,
            "source": result.source,
        }
    seconds = time.perf_counter() - start
    if args.overlay:
        write_overlays(out, frames.iterate(range(len(frames))), stems)
    report = {
        "source": _source(args, scene, prompts),
        "video": str(args.video),
        "frames": len(frames),
        "geometry": scene is not None,
        "prompt_frame": prompt.frame,
        "seconds": round(seconds, 2),
        "fps": round(len(frames) / seconds, 3),
        "per_frame": [records[index] for index in sorted(records)],
    }
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=2).encode())
    present = sum(r["present"] for r in records.values())
    print(f"tracked {len(frames)} frames ({present} with the object) at {report['fps']:.2f} fps -> {out}")
    return 0
