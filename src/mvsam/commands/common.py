"""Arguments and outputs that several commands share."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from mvsam.geometry import GeometrySettings, MvsSettings, SfmSettings
from mvsam.geometry.sfm import FEATURES
from mvsam.sam.model import MODEL_TYPES


def add_model_arguments(parser) -> None:
    """``--model`` and ``--checkpoint``, resolved by :func:`mvsam.sam.load_predictor`."""
    parser.add_argument("--model", default="mobile_sam", choices=MODEL_TYPES, help="SAM model type")
    parser.add_argument(
        "--checkpoint", type=Path, help="SAM checkpoint file (default: the verified cached one)"
    )


def write_json_report(path: Path, report) -> None:
    """Write a dataclass report as indented JSON and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(report), indent=2))
    print(f"wrote {path}")


def add_geometry_arguments(parser) -> None:
    """Flags of :class:`mvsam.geometry.GeometrySettings`, shared so equal flags hit the same cache entries."""
    parser.add_argument("--no-sfm", action="store_true", help="never run SfM (needs cameras)")
    parser.add_argument("--depth-resolution", type=int, default=512, help="MVS working long side (px)")
    parser.add_argument("--planes", type=int, default=96, help="depth planes swept per view")
    parser.add_argument("--neighbors", type=int, default=4, help="neighbour views per reference view")
    parser.add_argument("--max-image-size", type=int, default=1600, help="SfM SIFT image long side (px)")
    parser.add_argument(
        "--features", default=SfmSettings.features, choices=FEATURES, help="SfM features (xfeat: learned)"
    )


def geometry_settings(args, compute_depth: bool = True) -> GeometrySettings:
    """Settings from the flags of :func:`add_geometry_arguments`."""
    if args.neighbors < 1:
        raise ValueError(f"--neighbors must be >= 1, got {args.neighbors}")
    return GeometrySettings(
        sfm=SfmSettings(max_image_size=args.max_image_size, features=args.features),
        mvs=MvsSettings(
            resolution=args.depth_resolution,
            num_planes=args.planes,
            num_neighbors=args.neighbors,
            best_k=min(2, args.neighbors),
            min_consistent=min(2, args.neighbors),
        ),
        allow_sfm=not args.no_sfm,
        compute_depth=compute_depth,
    )
