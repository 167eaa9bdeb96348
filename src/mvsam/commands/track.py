"""``mvsam track VIDEO --prompt ... --out OUT``: follow objects through a video or a frame folder.

Every prompt belongs to object 1 unless it says ``object=N``; a palette mask prompt (DAVIS 2017 style,
pixel value = object id) without ``object=`` gives all its objects at once. All objects are prompted on one
frame and tracked together (one encoder pass per frame for all); their masks never overlap.

When VIDEO is a static multi-view scene with cameras (any layout ``Scene.load`` reads with cameras, e.g.
DTU, COLMAP, LLFF), the object is carried between views by 3D (cameras and depth from ``scene.geometry()``,
cached) instead of optical flow; ``--no-geometry`` turns that off. Frame indices are then view indices.

Writes ``OUT/masks/<frame stem>.png`` (uint8 0/255, frame size) for every frame when there is one object;
with several, ``OUT/masks/<object id>/<frame stem>.png`` and ``OUT/ids/<frame stem>.png`` (indexed DAVIS
palette, pixel value = object id, 0 = none). ``OUT/report.json``: per frame (and object) score, present,
how it was found; overall fps. A scene with cameras is carried by 3D for one object only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.cache import atomic_write_bytes, hash_file
from mvsam.commands.common import add_model_arguments, check_output_folder, clear_outputs, write_overlays
from mvsam.errors import InputError
from mvsam.export.instances import write_id_png
from mvsam.export.result import source_record
from mvsam.io.images import label_ids, write_mask_png
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
from mvsam.segment.track import (
    TRACK_DECODER,
    ObjectsResult,
    Tracker,
    TrackerConfig,
    TrackPrompt,
    validate_objects,
)


@dataclass
class Tagged:
    """One parsed prompt, the object it is for, and the CLI string it came from."""

    object_id: int
    prompt: UserPrompt
    spec: str


def split_object(text: str) -> tuple[int | None, str]:
    """``object=N`` taken out of a prompt string -> (N or None, the rest of the string)."""
    found, kept = None, []
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip().lower() != "object":
            kept.append(part)
            continue
        if found is not None:
            raise InputError(f"bad prompt {text!r}: 'object' given twice")
        try:
            found = int(value.strip())
        except ValueError:
            raise InputError(f"bad prompt {text!r}: object={value.strip()!r} is not an integer id") from None
        if found < 1:
            raise InputError(f"bad prompt {text!r}: object ids start at 1 (0 means no object)")
    return found, ",".join(kept)


def parse_tagged(points: list[str], boxes: list[str], masks: list[str]) -> list[Tagged]:
    """The CLI's prompt strings -> tagged prompts; a palette mask without ``object=`` gives all its ids."""
    tagged: list[Tagged] = []
    for texts, parse in ((points, parse_point_or_box), (boxes, parse_box)):
        for text in texts:
            object_id, rest = split_object(text)
            tagged.append(Tagged(object_id or 1, parse(rest), text))
    for text in masks:
        object_id, rest = split_object(text)
        paths = [
            part.partition("=")[2].strip() for part in rest.split(",") if part.strip().startswith("path=")
        ]
        ids = []
        if object_id is None and len(paths) == 1 and Path(paths[0]).expanduser().is_file():
            ids = label_ids(Path(paths[0]).expanduser())
        if len(ids) > 1:
            tagged += [Tagged(i, parse_mask_prompt(f"{rest},object={i}"), text) for i in ids]
        else:
            tagged.append(Tagged(object_id or 1, parse_mask_prompt(text), text))
    return tagged


def build_prompts(tagged: list[Tagged], names: list[str]) -> dict[int, TrackPrompt]:
    """One :class:`TrackPrompt` per object id from tagged prompts (see :func:`build_prompt`)."""
    if not tagged:
        return {1: build_prompt([], names)}
    by_object: dict[int, list[UserPrompt]] = {}
    for item in tagged:
        by_object.setdefault(item.object_id, []).append(item.prompt)
    prompts = {}
    for object_id, group in sorted(by_object.items()):
        try:
            prompts[object_id] = build_prompt(group, names)
        except InputError as error:
            raise InputError(f"object {object_id}: {error}") from None
    return prompts


def build_prompt(prompts: list[UserPrompt], names: list[str]) -> TrackPrompt:
    """One :class:`TrackPrompt` from parsed prompts, all on one frame; frames are named like views
    (file name, stem, else 0-based index; ``names`` are the frames' names)."""
    if not prompts:
        raise InputError(
            "no prompt: give --prompt 'frame=0,x=..,y=..', --box or --mask-prompt 'frame=0,path=m.png'"
        )
    frames = {resolve_view(names, prompt.view, "frame") for prompt in prompts}
    if len(frames) > 1:
        raise InputError(
            f"all prompts of an object must be on one frame, got frames {sorted(frames)}; prompts on "
            "different frames may disagree about what the object is, so give them on one frame"
        )
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
        help="'frame=0,x=..,y=..,label=1[,object=N]' (repeatable) or a box 'frame=0,x0=..,y0=..,x1=..,y1=..'"
        "; frame= takes a file name, stem or 0-based index (view= works too); object= defaults to 1",
    )
    parser.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="SPEC",
        help="'frame=0,x0=..,y0=..,x1=..,y1=..[,object=N]'",
    )
    parser.add_argument(
        "--mask-prompt",
        action="append",
        default=[],
        metavar="SPEC",
        help="'frame=0,path=mask.png[,object=ID]'; a palette/label PNG without object= gives all its objects",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder: masks/, [ids/,] report.json")
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


def _source(args, scene: Scene | None, tagged: list[Tagged], object_ids: list[int]) -> dict:
    """What ``mvsam export`` needs to re-open the frames: the scene record of the tracked input."""
    from mvsam.sam.weights import resolve_checkpoint

    records = [{"kind": type(t.prompt).__name__, "object": t.object_id, "spec": t.spec} for t in tagged]
    checkpoint = resolve_checkpoint(args.model, args.checkpoint)
    if scene is None:
        try:
            scene = Scene.load(args.video)  # a video's frames or a frame folder, as export will read them
        except ValueError:  # e.g. a single frame: no scene to re-open, only the path
            return {
                "command": "track",
                "scene": str(Path(args.video).absolute()),
                "object_ids": object_ids,
                "prompts": records,
                "model": args.model,
                "checkpoint_sha256": hash_file(checkpoint),
            }
    return source_record(
        scene, "track", object_ids=object_ids, prompts=records, model=args.model, checkpoint=checkpoint
    )


OUTPUTS = ["masks", "ids", "overlays", "report.json"]


def run(args) -> int:
    from mvsam.sam import load_predictor

    tagged = parse_tagged(args.prompt, args.box, args.mask_prompt)
    if args.sam_every < 1:
        raise InputError(f"--sam-every must be >= 1, got {args.sam_every}")
    config = TrackerConfig(sam_every=args.sam_every)
    out = check_output_folder(args.out)
    scene = None if args.no_geometry else static_scene(args.video)
    frames: FrameSource = open_frames(args.video) if scene is None else scene_frames(scene)
    names = [path.name for path in frames.paths] if isinstance(frames, FolderFrames) else frames.stems
    prompts = build_prompts(tagged, names)
    prompt_frame = validate_objects(prompts, frames)
    object_ids = sorted(prompts)
    several = len(object_ids) > 1
    predictor = load_predictor(args.model, checkpoint=args.checkpoint, decoder=TRACK_DECODER)
    tracker = Tracker(predictor, config)
    if scene is not None and several:
        print(
            f"{args.video}: {len(object_ids)} objects; the 3D memory follows one, so tracking by optical flow"
        )
        scene = None
    if scene is not None:
        print(f"{args.video}: a static scene with cameras ({scene.source_format}); tracking by 3D geometry")
        scene = scene.geometry()
    stems = frames.stems
    records = {}
    clear_outputs(out, OUTPUTS)
    start = time.perf_counter()
    if several:
        results = tracker.track_objects(frames, prompts)
    else:
        single = tracker.track(frames, prompts[object_ids[0]], scene=scene)
        results = (ObjectsResult(result.index, {object_ids[0]: result}) for result in single)
    for result in tqdm(results, total=len(frames), desc="tracking", unit="frame"):
        stem = stems[result.index]
        for object_id, answer in result.objects.items():
            folder = out / "masks" / str(object_id) if several else out / "masks"
            write_mask_png(folder / f"{stem}.png", answer.mask)
        if several:
            write_id_png(out / "ids" / f"{stem}.png", result.id_map(), max(object_ids))
        per_object = {
            str(object_id): {
                "score": round(answer.score, 4),
                "present": answer.present,
                "source": answer.source,
            }
            for object_id, answer in result.objects.items()
        }
        record = {"frame": stem, "index": result.index}
        records[result.index] = (
            {**record, "objects": per_object} if several else {**record, **per_object[str(object_ids[0])]}
        )
    seconds = time.perf_counter() - start
    if args.overlay:
        write_overlays(out, frames.iterate(range(len(frames))), stems)
    report = {
        "source": _source(args, scene, tagged, object_ids),
        "video": str(args.video),
        "frames": len(frames),
        "objects": object_ids,
        "geometry": scene is not None,
        "prompt_frame": prompt_frame,
        "seconds": round(seconds, 2),
        "fps": round(len(frames) / seconds, 3),
        "per_frame": [records[index] for index in sorted(records)],
    }
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=2).encode())
    if several:
        present = {i: sum(r["objects"][str(i)]["present"] for r in records.values()) for i in object_ids}
        found = ", ".join(f"object {i} on {n}" for i, n in present.items())
    else:
        found = f"{sum(r['present'] for r in records.values())} with the object"
    print(f"tracked {len(frames)} frames ({found}) at {report['fps']:.2f} fps -> {out}")
    return 0
