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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.cache import hash_file
from mvsam.export.result import source_record
from mvsam.io.images import read_mask_png, write_mask_png
from mvsam.io.video import FolderFrames, FrameSource, open_frames
from mvsam.scene import Scene
from mvsam.segment.track import Tracker, TrackerConfig, TrackPrompt, validate_prompt


@dataclass(frozen=True)
class ClickSpec:
    """One click parsed from ``frame=F,x=X,y=Y[,label=1]``."""

    frame: int
    x: float
    y: float
    label: int = 1


@dataclass(frozen=True)
class BoxSpec:
    """A box parsed from ``frame=F,x0=..,y0=..,x1=..,y1=..``."""

    frame: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class MaskSpec:
    """A mask image parsed from ``frame=F,path=mask.png``."""

    frame: int
    path: Path


def _fields(text: str, allowed: set[str], required: set[str]) -> dict[str, str]:
    """``key=value`` pairs separated by commas, checked against the allowed and required keys."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or not value:
            raise ValueError(f"cannot parse {part!r} in prompt {text!r}: expected key=value")
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} in prompt {text!r}; allowed: {', '.join(sorted(allowed))}")
        if key in fields:
            raise ValueError(f"key {key!r} given twice in prompt {text!r}")
        fields[key] = value
    missing = required - fields.keys()
    if missing:
        raise ValueError(f"prompt {text!r} lacks {', '.join(sorted(missing))}")
    return fields


def _number(fields: dict[str, str], key: str, text: str, kind: type = float):
    try:
        return kind(fields[key])
    except ValueError as error:
        raise ValueError(
            f"{key}={fields[key]!r} in prompt {text!r} is not a{'n integer' if kind is int else ' number'}"
        ) from error


def parse_prompt(text: str) -> ClickSpec | BoxSpec:
    """A click ``frame=0,x=412,y=230,label=1`` or a box ``frame=0,x0=..,y0=..,x1=..,y1=..``."""
    keys = {"frame", "x", "y", "label", "x0", "y0", "x1", "y1"}
    fields = _fields(text, keys, {"frame"})
    frame = _number(fields, "frame", text, int)
    if {"x0", "y0", "x1", "y1"} & fields.keys():
        fields = _fields(text, {"frame", "x0", "y0", "x1", "y1"}, {"frame", "x0", "y0", "x1", "y1"})
        box = tuple(_number(fields, key, text) for key in ("x0", "y0", "x1", "y1"))
        return BoxSpec(frame, box)
    fields = _fields(text, {"frame", "x", "y", "label"}, {"frame", "x", "y"})
    label = _number(fields, "label", text, int) if "label" in fields else 1
    if label not in (0, 1):
        raise ValueError(f"label must be 1 (object) or 0 (background) in prompt {text!r}")
    return ClickSpec(frame, _number(fields, "x", text), _number(fields, "y", text), label)


def parse_mask_prompt(text: str) -> MaskSpec:
    """``frame=0,path=mask.png``."""
    fields = _fields(text, {"frame", "path"}, {"frame", "path"})
    return MaskSpec(_number(fields, "frame", text, int), Path(fields["path"]))


def build_prompt(specs: list[ClickSpec | BoxSpec], mask: MaskSpec | None) -> TrackPrompt:
    """One :class:`TrackPrompt` from the parsed specs (all on one frame)."""
    if mask is not None:
        if specs:
            raise ValueError("give either --prompt or --mask-prompt, not both")
        return TrackPrompt(frame=mask.frame, mask=read_mask_png(mask.path))
    if not specs:
        raise ValueError("no prompt: give --prompt 'frame=0,x=..,y=..' or --mask-prompt 'frame=0,path=m.png'")
    frames = {spec.frame for spec in specs}
    if len(frames) > 1:
        raise ValueError(f"all prompts must be on one frame, got frames {sorted(frames)}")
    clicks = [spec for spec in specs if isinstance(spec, ClickSpec)]
    boxes = [spec for spec in specs if isinstance(spec, BoxSpec)]
    if len(boxes) > 1:
        raise ValueError("give at most one box prompt")
    points = np.array([[c.x, c.y] for c in clicks], dtype=np.float64) if clicks else None
    labels = np.array([c.label for c in clicks], dtype=np.int64) if clicks else None
    box = np.array(boxes[0].box, dtype=np.float64) if boxes else None
    return TrackPrompt(frame=frames.pop(), points=points, labels=labels, box=box)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("track", help="track one object through a video or a folder of frames")
    parser.add_argument(
        "video", type=Path, help="video file, folder of frames, or a static scene with cameras (uses 3D)"
    )
    parser.add_argument(
        "--prompt",
        action="append",
        type=parse_prompt,
        default=[],
        help="'frame=0,x=..,y=..,label=1' (repeatable) or a box 'frame=0,x0=..,y0=..,x1=..,y1=..'",
    )
    parser.add_argument("--mask-prompt", type=parse_mask_prompt, help="'frame=0,path=mask.png'")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--model", default="mobile_sam", help="SAM model type")
    parser.add_argument("--checkpoint", type=Path, help="SAM checkpoint (default: the cached one)")
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
        raise ValueError(f"{scene.root}: views have different sizes {sorted(sizes)}; tracking needs one size")
    return FolderFrames([view.image_path for view in scene.views], sizes.pop())


def _source(args, scene: Scene | None, prompt: TrackPrompt) -> dict:
    """What ``mvsam export`` needs to re-open the frames: the scene record of the tracked input."""
    from mvsam.sam.weights import resolve_checkpoint

    prompts = [
        {"kind": "click", "spec": f"frame={spec.frame},x={spec.x},y={spec.y},label={spec.label}"}
        if isinstance(spec, ClickSpec)
        else {"kind": "box", "spec": f"frame={spec.frame},box={spec.box}"}
        for spec in args.prompt
    ]
    if args.mask_prompt is not None:
        prompts.append({"kind": "mask", "spec": f"frame={prompt.frame},path={args.mask_prompt.path}"})
    checkpoint = resolve_checkpoint(args.model, args.checkpoint)
    if scene is None:
        try:
            scene = Scene.load(args.video)  # a video's frames or a frame folder, as export will read them
        except ValueError:  # e.g. a single frame: no scene to re-open, only the path
            return {
                "command": "track",
                "scene": str(Path(args.video).absolute()),
                "object_ids": [1],
                "prompts": prompts,
                "model": args.model,
                "checkpoint_sha256": hash_file(checkpoint),
            }
    return source_record(
        scene, "track", object_ids=[1], prompts=prompts, model=args.model, checkpoint=checkpoint
    )


def run(args) -> int:
    from mvsam.sam import load_predictor

    scene = None if args.no_geometry else static_scene(args.video)
    frames: FrameSource = open_frames(args.video) if scene is None else scene_frames(scene)
    prompt = build_prompt(args.prompt, args.mask_prompt)
    validate_prompt(prompt, frames)
    tracker = Tracker(
        load_predictor(args.model, checkpoint=args.checkpoint), TrackerConfig(sam_every=args.sam_every)
    )
    if scene is not None:
        print(f"{args.video}: a static scene with cameras ({scene.source_format}); tracking by 3D geometry")
        scene = scene.geometry()
    stems = frames.stems
    records = {}
    start = time.perf_counter()
    for result in tqdm(
        tracker.track(frames, prompt, scene=scene), total=len(frames), desc="tracking", unit="frame"
    ):
        write_mask_png(args.out / "masks" / f"{stems[result.index]}.png", result.mask)
        records[result.index] = {
            "frame": stems[result.index],
            "index": result.index,
            "score": round(result.score, 4),
            "present": result.present,
            "source": result.source,
        }
    seconds = time.perf_counter() - start
    report = {
        "source": _source(args, scene, prompt),
        "video": str(args.video),
        "frames": len(frames),
        "geometry": scene is not None,
        "prompt_frame": prompt.frame,
        "seconds": round(seconds, 2),
        "fps": round(len(frames) / seconds, 3),
        "per_frame": [records[index] for index in sorted(records)],
    }
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    present = sum(r["present"] for r in records.values())
    print(
        f"tracked {len(frames)} frames ({present} with the object) at {report['fps']:.2f} fps -> {args.out}"
    )
    return 0
