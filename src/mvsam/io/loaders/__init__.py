"""Load a scene from any supported layout into a ``Scene`` in mvsam's conventions.

One module per format; each exposes ``detect(path) -> bool`` and ``load(path, options) -> Scene``.
``FORMATS`` lists them in detection order: the most specific layout wins (DTU ships both
``cameras_sphere.npz`` and ``poses_bounds.npy`` and is read as NeuS), a plain image folder comes last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mvsam.errors import InputError
from mvsam.io.loaders import colmap, folder, llff, nerfstudio, neus, pointmaps, scannet, tum, video
from mvsam.io.loaders.common import LoadOptions, default_cache_dir
from mvsam.scene import Scene


@dataclass(frozen=True)
class SceneFormat:
    """One supported layout: its name for ``format=``, what auto-detection looks for, and its loader."""

    name: str
    looks_for: str
    detect: Callable[[Path], bool]
    load: Callable[[Path, LoadOptions], Scene]


FORMATS: tuple[SceneFormat, ...] = (
    SceneFormat("video", f"a video file ({' '.join(video.VIDEO_SUFFIXES)})", video.detect, video.load),
    SceneFormat(
        "nerfstudio", "transforms.json (nerfstudio, instant-ngp, Blender)", nerfstudio.detect, nerfstudio.load
    ),
    SceneFormat("neus", "cameras_sphere.npz + image/ (IDR/NeuS, DTU)", neus.detect, neus.load),
    SceneFormat(
        "colmap",
        "sparse/0/ or sparse/ with cameras, images, points3D (.bin/.txt) + images/",
        colmap.detect,
        colmap.load,
    ),
    SceneFormat("llff", "poses_bounds.npy + images_N/ or images/", llff.detect, llff.load),
    SceneFormat("scannet", "color/ depth/ pose/ intrinsic/ (ScanNet RGB-D)", scannet.detect, scannet.load),
    SceneFormat("tum", "rgb.txt depth.txt groundtruth.txt (TUM RGB-D)", tum.detect, tum.load),
    SceneFormat(
        "pointmaps",
        "a .npz with pts3d (+ conf, images or image_paths), or a folder with one",
        pointmaps.detect,
        pointmaps.load,
    ),
    SceneFormat("images", "image files in the folder or in images/", folder.detect, folder.load),
)


def format_names() -> list[str]:
    return [f.name for f in FORMATS]


def detect_format(path: Path) -> SceneFormat:
    """The first format whose layout ``path`` has; ValueError listing everything looked for otherwise."""
    for candidate in FORMATS:
        if candidate.detect(path):
            return candidate
    looked_for = "\n".join(f"  - {f.name}: {f.looks_for}" for f in FORMATS)
    raise InputError(f"{path}: no known scene layout found. Looked for:\n{looked_for}")


def load_scene(
    path: str | Path,
    *,
    format: str | None = None,
    cache_dir: Path | None = None,
    video_stride: int = 1,
    video_max_frames: int | None = None,
    image_subdir: str | None = None,
) -> Scene:
    """Load the scene at ``path`` (a folder, a video file or a pointmap .npz).

    ``format`` forces a layout (one of ``format_names()``) instead of auto-detection. ``cache_dir`` holds
    derived files (video frames, undistorted images, images from pointmap arrays) and every later stage's
    cache; it defaults to ``<scene folder>/.mvsam_cache`` or, when that is read-only,
    ``mvsam_home()/scenes/<hash of the path>``. ``video_stride`` / ``video_max_frames`` pick video frames;
    ``image_subdir`` picks the image folder (e.g. ``images_8`` for LLFF).
    """
    path = Path(path).expanduser().absolute()
    if not path.exists():
        raise FileNotFoundError(f"scene not found: {path}")
    if video_stride < 1:
        raise InputError(f"video_stride must be >= 1, got {video_stride}")
    if video_max_frames is not None and video_max_frames < 1:
        raise InputError(f"video_max_frames must be >= 1 or None, got {video_max_frames}")
    options = LoadOptions(
        cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(path),
        video_stride=video_stride,
        video_max_frames=video_max_frames,
        image_subdir=image_subdir,
    )
    if format is None:
        scene_format = detect_format(path)
    else:
        matches = [f for f in FORMATS if f.name == format]
        if not matches:
            raise InputError(f"unknown scene format {format!r}; choose one of {', '.join(format_names())}")
        scene_format = matches[0]
    try:
        return scene_format.load(path, options)
    except InputError:
        raise
    except ValueError as error:  # loaders reject bad file contents with ValueError: the user's input
        raise InputError(f"{path} ({scene_format.name}): {error}") from error


__all__ = ["FORMATS", "SceneFormat", "detect_format", "format_names", "load_scene"]
