"""Arguments and outputs that several commands share."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

from mvsam.cache import atomic_write_bytes, remove_orphan_temporaries
from mvsam.errors import InputError
from mvsam.geometry import GeometrySettings, MvsSettings, SfmSettings
from mvsam.geometry.sfm import FEATURES
from mvsam.sam.model import MODEL_TYPES
from mvsam.scene import Scene


def add_model_arguments(parser) -> None:
    """``--model`` and ``--checkpoint``, resolved by :func:`mvsam.sam.load_predictor`."""
    parser.add_argument("--model", default="mobile_sam", choices=MODEL_TYPES, help="SAM model type")
    parser.add_argument(
        "--checkpoint", type=Path, help="SAM checkpoint file (default: the verified cached one)"
    )


def write_json_report(path: Path, report) -> None:
    """Write a dataclass report as indented JSON and say where."""
    atomic_write_bytes(path, json.dumps(asdict(report), indent=2).encode())
    print(f"wrote {path}")


def add_depth_source_argument(parser) -> None:
    """``--depth-source`` of the interactive segmenter (``segment`` and ``serve``)."""
    parser.add_argument(
        "--depth-source",
        default="auto",
        choices=("auto", "dense", "sparse"),
        help="what carries prompts between views: dense depth or SfM tracks (auto: dense when every "
        "posed view has depth)",
    )


def add_geometry_arguments(parser) -> None:
    """Flags of :class:`mvsam.geometry.GeometrySettings`, shared so equal flags hit the same cache entries."""
    parser.add_argument("--no-sfm", action="store_true", help="never run SfM (needs cameras)")
    parser.add_argument(
        "--depth-resolution", type=int, default=MvsSettings.resolution, help="MVS working long side (px)"
    )
    parser.add_argument(
        "--planes", type=int, default=MvsSettings.num_planes, help="depth planes swept per view"
    )
    parser.add_argument("--neighbors", type=int, default=4, help="neighbour views per reference view")
    parser.add_argument("--max-image-size", type=int, default=1600, help="SfM SIFT image long side (px)")
    parser.add_argument(
        "--features", default=SfmSettings.features, choices=FEATURES, help="SfM features (xfeat: learned)"
    )


def geometry_settings(args, compute_depth: bool = True) -> GeometrySettings:
    """Settings from the flags of :func:`add_geometry_arguments`, checked before anything slow runs."""
    if args.neighbors < 1:
        raise InputError(f"--neighbors must be >= 1, got {args.neighbors}")
    settings = GeometrySettings(
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
    try:
        settings.validate()
    except ValueError as error:
        raise InputError(f"bad geometry option: {error}") from None
    return settings


def add_scene_arguments(parser) -> None:
    """How ``Scene.load`` reads the scene: layout, cache folder, video frames, image folder."""
    parser.add_argument("--format", default=None, help="force a scene layout instead of auto-detection")
    parser.add_argument("--cache-dir", default=None, help="cache folder (default: <scene>/.mvsam_cache)")
    parser.add_argument("--video-stride", type=int, default=1, help="for a video: keep every k-th frame")
    parser.add_argument("--max-frames", type=int, default=None, help="for a video: keep at most N frames")
    parser.add_argument(
        "--images", default=None, metavar="SUBDIR", help="image folder inside the scene (e.g. images_8)"
    )


def load_scene(args) -> Scene:
    """``Scene.load`` with the flags of :func:`add_scene_arguments`; says where the cache went when the
    scene folder is read-only."""
    scene = Scene.load(
        args.scene,
        format=args.format,
        cache_dir=args.cache_dir,
        video_stride=args.video_stride,
        video_max_frames=args.max_frames,
        image_subdir=args.images,
    )
    folder = scene.root if scene.root.is_dir() else scene.root.parent
    if args.cache_dir is None and not Path(scene.cache_dir).is_relative_to(folder):
        print(f"{folder} is read-only: cache in {scene.cache_dir}")
    return scene


def check_output_folder(out: str | Path, what: str = "--out") -> Path:
    """The output folder, created now (before any slow work) so a bad path fails fast and clearly."""
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"{what} {out} is an existing file, not a folder; give a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create {what} folder {out}: {error.strerror}") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"{what} folder {out} is not writable")
    return out


def clear_outputs(out: Path, names: list[str]) -> None:
    """Remove what an earlier run wrote under ``out`` (files and folders in ``names``) and temporary files
    left by a killed run, so the folder holds only this run's results; other files are left alone."""
    for name in names:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    remove_orphan_temporaries(out)


def write_overlays(out: Path, images, stems: list[str]) -> None:
    """``out/overlays/<stem>.jpg``: each image with its ``out/masks/<stem>.png`` tinted and outlined.

    ``images`` yields (index, HxWx3 uint8 RGB) as ``FrameSource.iterate`` does.
    """
    from mvsam.export.overlay import overlay_masks
    from mvsam.io.images import read_mask_png, write_image

    for index, image in images:
        mask = read_mask_png(out / "masks" / f"{stems[index]}.png")
        write_image(out / "overlays" / f"{stems[index]}.jpg", overlay_masks(image, [mask]))
