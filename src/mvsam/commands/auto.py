"""``mvsam auto``: every object of a scene, one id per object in every view, its 3D points."""

from __future__ import annotations

import time
from pathlib import Path

from mvsam.commands.common import add_geometry_arguments, add_model_arguments, geometry_settings
from mvsam.export.instances import write_auto_outputs
from mvsam.geometry import compute_geometry
from mvsam.scene import Scene
from mvsam.segment.auto import AutoConfig, AutoSegmenter, consistency


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("auto", help="segment every object with one id per object in all views")
    parser.add_argument("scene", help="scene folder or video (any supported layout)")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: ids/, overlays/, instances.json, instances.ply, report.json",
    )
    parser.add_argument("--format", default=None, help="force a scene layout instead of auto-detection")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: <scene>/.mvsam_cache)")
    parser.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "multiview", "video"),
        help="multiview (3D geometry) or video (dense flow through time); auto: video for video files",
    )
    parser.add_argument("--keyframes", type=int, default=0, help="views given automatic masks (0: automatic)")
    parser.add_argument(
        "--points-per-side",
        type=int,
        help=f"automatic-mask grid (default {AutoConfig.points_per_side}; "
        f"video {AutoConfig.video_points_per_side})",
    )
    parser.add_argument(
        "--granularity",
        default="whole",
        choices=("whole", "parts"),
        help="drop parts of larger objects or not",
    )
    parser.add_argument("--fill-rounds", type=int, default=AutoConfig.fill_rounds, help="coverage rounds")
    add_model_arguments(parser)
    add_geometry_arguments(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    start = time.perf_counter()
    grid = args.points_per_side
    config = AutoConfig(
        keyframes=args.keyframes,
        points_per_side=AutoConfig.points_per_side if grid is None else grid,
        video_points_per_side=AutoConfig.video_points_per_side if grid is None else grid,
        granularity=args.granularity,
        fill_rounds=args.fill_rounds,
    )
    config.validate()  # before any slow step
    scene = Scene.load(args.scene, format=args.format, cache_dir=args.cache_dir)
    video = args.mode == "video" or (args.mode == "auto" and scene.source_format == "video")
    tick = time.perf_counter()
    if not video:
        compute_geometry(scene, geometry_settings(args), progress=True)
    geometry_seconds = time.perf_counter() - tick
    from mvsam.sam import load_predictor

    predictor = load_predictor(  # the video mode keeps the torch decoder its numbers were measured with
        args.model,
        checkpoint=args.checkpoint,
        cache_dir=scene.cache_dir / "embeddings",
        decoder="torch" if video else "auto",
    )
    if video:
        from mvsam.segment.auto_video import VideoAutoSegmenter

        result = VideoAutoSegmenter(scene, predictor, config).run()
        score = None
    else:
        result = AutoSegmenter(scene, predictor, config).run()
        score = consistency(result)
    out = Path(args.out)
    report = write_auto_outputs(
        result,
        out,
        score,
        extra={
            "mode": "video" if video else "multiview",
            "geometry_seconds": geometry_seconds,
            "all_seconds": time.perf_counter() - start,
        },
    )
    for note in report["notes"]:
        print(f"note: {note}")
    views = len(scene.views)
    print(
        f"{len(result.objects)} objects over {views} views; coverage {result.coverage:.3f}"
        + ("" if score is None else f"; consistency {score:.3f}")
        + f"; {result.seconds.total:.1f}s (+ geometry {geometry_seconds:.1f}s)"
    )
    print(f"wrote {out}/ids/, overlays/, instances.json, {'instances.ply, ' if not video else ''}report.json")
    return 0
