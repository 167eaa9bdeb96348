"""``mvsam segment``: one object, consistent masks in every view, from clicks/boxes/masks on a few views."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from mvsam.cache import atomic_write_bytes
from mvsam.commands.common import add_geometry_arguments, add_model_arguments, geometry_settings
from mvsam.export.ply import write_ply
from mvsam.geometry import GeometryTimings, compute_geometry
from mvsam.io.images import write_mask_png
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter, SegmenterConfig, ViewResult
from mvsam.segment.prompts import parse_box, parse_click, parse_mask_prompt


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
        help="a click: 'view=NAME|INDEX,x=X,y=Y[,label=1|0]' (repeatable; label 0 = background)",
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
        help="a mask: 'view=NAME|INDEX,path=mask.png'",
    )
    parser.add_argument("--out", required=True, help="output folder: masks/, object.ply, report.json")
    parser.add_argument("--format", default=None, help="force a scene layout instead of auto-detection")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: <scene>/.mvsam_cache)")
    add_model_arguments(parser)
    parser.add_argument("--iterations", type=int, default=SegmenterConfig.max_iterations, help="max rounds")
    parser.add_argument(
        "--depth-source",
        default="auto",
        choices=("auto", "dense", "sparse"),
        help="dense depth or SfM tracks",
    )
    add_geometry_arguments(parser)
    parser.set_defaults(run=run)


def _view_record(view: ViewResult) -> dict:
    record = asdict(view) | {"mask": f"masks/{Path(view.name).stem}.png"}
    record["agreement"] = None if math.isnan(view.agreement) else view.agreement
    return record


def run(args) -> int:
    start = time.perf_counter()
    prompts = [parse_click(text) for text in args.prompt]
    prompts += [parse_box(text) for text in args.box]
    prompts += [parse_mask_prompt(text) for text in args.mask_prompt]
    if not prompts:
        raise ValueError("give at least one --prompt, --box or --mask-prompt")
    scene = Scene.load(args.scene, format=args.format, cache_dir=args.cache_dir)
    timings = GeometryTimings()
    tick = time.perf_counter()
    compute_geometry(
        scene,
        geometry_settings(args, compute_depth=args.depth_source != "sparse"),
        progress=True,
        timings=timings,
    )
    geometry_seconds = time.perf_counter() - tick
    from mvsam.sam import load_predictor

    predictor = load_predictor(
        args.model, checkpoint=args.checkpoint, cache_dir=scene.cache_dir / "embeddings"
    )
    config = SegmenterConfig(max_iterations=args.iterations, depth_source=args.depth_source)
    segmenter = Segmenter(scene, predictor, config)
    result = segmenter.segment(prompts)
    tick = time.perf_counter()
    out = Path(args.out)
    for index, view in enumerate(tqdm(scene.views, desc="writing masks", unit="view")):
        write_mask_png(out / "masks" / f"{view.stem}.png", segmenter.mask(index))
    xyz, rgb = segmenter.object_points()
    write_ply(out / "object.ply", xyz, rgb)
    write_seconds = time.perf_counter() - tick
    report = {
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
        },
        "geometry_cached": timings.cached,
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
