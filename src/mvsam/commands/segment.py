"""``mvsam segment``: one object, consistent masks in every view, from clicks/boxes/masks on a few views."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from mvsam.cache import atomic_write_bytes
from mvsam.commands.common import (
    add_depth_source_argument,
    add_geometry_arguments,
    add_model_arguments,
    add_scene_arguments,
    check_output_folder,
    clear_outputs,
    geometry_settings,
    load_scene,
    write_overlays,
)
from mvsam.errors import InputError
from mvsam.export.ply import write_ply
from mvsam.export.result import source_record
from mvsam.geometry import GeometryTimings, compute_geometry
from mvsam.io.images import write_mask_png
from mvsam.segment.interactive import Segmenter, SegmenterConfig, ViewResult
from mvsam.segment.motion import check_static_object
from mvsam.segment.prompts import group_prompts, parse_box, parse_mask_prompt, parse_point_or_box


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment", help="segment one object in every view from prompts on one or more views"
    )
    parser.add_argument("scene", help="scene folder or video (any supported layout)")
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="SPEC",
        help="a click: 'view=NAME|INDEX,x=X,y=Y[,label=1|0]' (repeatable; label 0 = background; "
        "frame= works as view=; a box spelled as for --box is accepted too)",
    )
    parser.add_argument(
        "--box",
        action="append",
        default=[],
        metavar="SPEC",
        help="a box: 'view=NAME|INDEX,x0=..,y0=..,x1=..,y1=..'",
    )
    parser.add_argument(
        "--mask-prompt",
        action="append",
        default=[],
        metavar="SPEC",
        help="a mask: 'view=NAME|INDEX,path=mask.png[,object=ID]' (any non-zero pixel is the object; "
        "object= picks one id of a palette/label image)",
    )
    parser.add_argument("--out", required=True, help="output folder: masks/, object.ply, report.json")
    parser.add_argument("--overlay", action="store_true", help="also write overlays/<view>.jpg")
    add_scene_arguments(parser)
    add_model_arguments(parser)
    parser.add_argument("--iterations", type=int, default=SegmenterConfig.max_iterations, help="max rounds")
    add_depth_source_argument(parser)
    add_geometry_arguments(parser)
    parser.set_defaults(run=run)


def _view_record(view: ViewResult) -> dict:
    record = asdict(view) | {"mask": f"masks/{Path(view.name).stem}.png"}
    record["agreement"] = None if math.isnan(view.agreement) else view.agreement
    return record


OUTPUTS = ["masks", "overlays", "object.ply", "report.json"]
FIRST_MASKS = "first_masks"  # the prompted views' masks from the prompts alone, written before the rest


def _write_first_masks(segmenter: Segmenter, prompts, out: Path, start: float) -> tuple[list[str], float]:
    """``out/first_masks/<stem>.png`` for each prompted view, as soon as its own embedding exists (before
    geometry and the other views), each printed with the seconds since the command started; returns the
    views' names and those seconds."""
    names = []
    for index, mask in segmenter.first_masks(prompts).items():
        view = segmenter.scene.views[index]
        path = out / FIRST_MASKS / f"{view.stem}.png"
        write_mask_png(path, mask)
        names.append(view.name)
        print(f"first mask of {view.name}: {path} ({time.perf_counter() - start:.1f}s)", flush=True)
    return names, time.perf_counter() - start


def run(args) -> int:
    start = time.perf_counter()
    # Everything checkable is checked before the slow part (geometry, embeddings).
    prompts = [parse_point_or_box(text) for text in args.prompt]
    prompts += [parse_box(text) for text in args.box]
    prompts += [parse_mask_prompt(text) for text in args.mask_prompt]
    specs = [*args.prompt, *args.box, *args.mask_prompt]
    if not prompts:
        raise InputError("give at least one --prompt, --box or --mask-prompt")
    if args.iterations < 1:
        raise InputError(f"--iterations must be >= 1, got {args.iterations}")
    config = SegmenterConfig(max_iterations=args.iterations, depth_source=args.depth_source)
    config.validate()
    settings = geometry_settings(args, compute_depth=args.depth_source != "sparse")
    out = check_output_folder(args.out)
    scene = load_scene(args)
    group_prompts(prompts, scene.view_index, [(view.width, view.height) for view in scene.views])
    from mvsam.sam import load_predictor

    predictor = load_predictor(
        args.model, checkpoint=args.checkpoint, cache_dir=scene.cache_dir / "embeddings"
    )
    clear_outputs(out, [FIRST_MASKS])
    first: tuple[list[str], float] | None = None
    if any(view.camera is not None for view in scene.views):  # cameras from the loader: no geometry needed
        segmenter = Segmenter(scene, predictor, config)
        first = _write_first_masks(segmenter, prompts, out, start)
    timings = GeometryTimings()
    tick = time.perf_counter()
    compute_geometry(scene, settings, progress=True, timings=timings)
    geometry_seconds = time.perf_counter() - tick
    if first is None:  # cameras from SfM: the first mask comes with the rest
        segmenter = Segmenter(scene, predictor, config)
    result = segmenter.segment(prompts)
    masks = [segmenter.mask(index) for index in range(len(scene.views))]
    motion = check_static_object(scene, masks, [i for i, view in enumerate(result.views) if view.prompted])
    if motion is not None and motion.moving:
        result.notes.append(motion.message(str(args.scene)))
    tick = time.perf_counter()
    clear_outputs(out, OUTPUTS)
    for view, mask in zip(tqdm(scene.views, desc="writing masks", unit="view"), masks, strict=True):
        write_mask_png(out / "masks" / f"{view.stem}.png", mask)
    xyz, rgb = segmenter.object_points()
    write_ply(out / "object.ply", xyz, rgb)
    if args.overlay:
        images = ((index, view.load_image()) for index, view in enumerate(scene.views))
        write_overlays(out, images, [view.stem for view in scene.views])
    write_seconds = time.perf_counter() - tick
    from mvsam.sam.weights import resolve_checkpoint

    source = source_record(
        scene,
        "segment",
        object_ids=[1],
        prompts=[{"kind": type(p).__name__, "spec": spec} for p, spec in zip(prompts, specs, strict=True)],
        model=args.model,
        checkpoint=resolve_checkpoint(args.model, args.checkpoint),
        geometry=settings,
        scene_format=args.format,
    )
    report = {
        "source": source,
        "scene": str(scene.root),
        "mode": "sparse" if segmenter.sparse_mode else "dense",
        "iterations": result.iterations,
        "converged": result.converged,
        "changes": result.changes,
        "views": [_view_record(view) for view in result.views],
        "object_points": len(xyz),
        "notes": scene.notes + result.notes,
        "seconds": asdict(result.seconds)
        | {
            "geometry": geometry_seconds,
            "write": write_seconds,
            "all": time.perf_counter() - start,
        }
        | ({} if first is None else {"first_masks": first[1]}),
        "geometry_cached": timings.cached,
        "first_masks": None if first is None else first[0],
        "static_check": None if motion is None else asdict(motion) | {"moving": motion.moving},
    }
    atomic_write_bytes(
        out / "report.json", json.dumps(report, indent=1, allow_nan=False, default=str).encode()
    )
    visible = sum(view.visible for view in result.views)
    for note in report["notes"]:
        print(f"note: {note}")
    for view in result.views:
        if view.geometry == "correspondences":
            print(f"{view.name}: no camera; segmented through feature correspondences")
        elif view.geometry == "none":
            print(f"{view.name}: no camera and no correspondences; no mask")
    print(
        f"object visible in {visible}/{len(result.views)} views after {result.iterations} rounds"
        f"{' (converged)' if result.converged else ''}; {len(xyz)} object points; "
        f"segment {result.seconds.total:.1f}s, geometry {geometry_seconds:.1f}s"
    )
    print(f"wrote {out}/masks/, object.ply, report.json")
    return 0
