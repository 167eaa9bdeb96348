"""``mvsam serve``: the local web app (click in any view, every view follows), see :mod:`mvsam.server`."""

from __future__ import annotations

from mvsam.commands.common import (
    add_depth_source_argument,
    add_geometry_arguments,
    add_model_arguments,
    geometry_settings,
)
from mvsam.errors import InputError
from mvsam.segment.interactive import SegmenterConfig


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="local web app: click an object in any view, see all views")
    parser.add_argument("scene", help="scene folder or video (any supported layout)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only); any other address prints a "
        "warning and requires the printed access token on every request",
    )
    parser.add_argument(
        "--out", default=None, help="folder for the saved state (default: <scene cache>/serve)"
    )
    parser.add_argument(
        "--video",
        action="store_true",
        help="treat a folder of frames as a video to track (a video file always is)",
    )
    parser.add_argument("--format", default=None, help="force a scene layout instead of auto-detection")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: <scene>/.mvsam_cache)")
    add_model_arguments(parser)
    add_depth_source_argument(parser)
    add_geometry_arguments(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    import uvicorn

    from mvsam.server import Workspace, create_app
    from mvsam.server.security import is_loopback, new_token

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    token = None
    url = f"http://{'127.0.0.1' if args.host in ('127.0.0.1', 'localhost') else args.host}:{args.port}/"
    if not is_loopback(args.host):
        token = new_token()
        url += f"?token={token}"
        print(
            f"WARNING: listening on {args.host}, not just this machine: anyone who can reach port "
            f"{args.port} and has the token below can read the scene's images and run SAM. Traffic is "
            "plain HTTP (not encrypted)."
        )
    workspace = Workspace(
        args.scene,
        args.out,
        scene_options={"format": args.format, "cache_dir": args.cache_dir},
        geometry=geometry_settings(args, compute_depth=args.depth_source != "sparse"),
        model=args.model,
        checkpoint=args.checkpoint,
        config=SegmenterConfig(depth_source=args.depth_source),
        video=True if args.video else None,
    )
    app = create_app(workspace, host=args.host, token=token)
    print(f"mvsam serve: open {url}  (Ctrl+C to stop)")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
