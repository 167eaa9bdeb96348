"""``mvsam export RESULT --format FORMAT[,FORMAT] --out DIR``: a result in the formats other tools read."""

from __future__ import annotations

from pathlib import Path

from mvsam.export import FORMATS, export, parse_formats


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="write a segment/auto/track result as png, davis, coco, yolo, nerfstudio, colmap, ..."
    )
    parser.add_argument("result", type=Path, help="the --out folder of mvsam segment, auto or track")
    parser.add_argument(
        "--format",
        action="append",
        required=True,
        metavar="FORMAT",
        help=f"one or more of {', '.join(FORMATS)}, comma-separated or repeated, or all",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (must be missing or empty)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    parser.add_argument("--objects", type=int, nargs="+", help="object ids to export (default: all)")
    parser.add_argument("--scene", type=Path, help="where the result's scene is now, if it moved")
    parser.set_defaults(run=run)


def run(args) -> int:
    report = export(
        args.result,
        parse_formats(args.format),
        args.out,
        force=args.force,
        objects=args.objects,
        scene=args.scene,
    )
    for name, paths in report.written.items():
        shown = ", ".join(paths[:3]) + (f", ... ({len(paths)} files)" if len(paths) > 3 else "")
        print(f"{name}: {shown}")
    for object_id, facts in report.meshes.items():
        print(
            f"mesh of object {object_id}: {facts['faces']} faces, {facts['vertices']} vertices, "
            f"{'watertight' if facts['watertight'] else 'not watertight'}, {facts['seconds']} s"
        )
    print(f"wrote {report.out}")
    return 0
