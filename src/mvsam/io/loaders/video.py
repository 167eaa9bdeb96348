"""A video file, decoded with PyAV into JPEG frames under ``<cache_dir>/frames/``.

Frames are named by their index in the video (``000010.jpg`` is the 11th frame), so names stay meaningful
with a stride. A ``source.json`` stamp (video identity, stride, limit) lets a second load reuse the frames.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import av
from PIL import Image
from tqdm import tqdm

from mvsam.cache import atomic_write_bytes, exclusive_lock
from mvsam.io.images import list_images
from mvsam.io.loaders.common import LoadOptions, require_views
from mvsam.io.video import VIDEO_SUFFIXES, frame_stem
from mvsam.scene import Scene, View

STAMP_FILE = "source.json"


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def _decode(path: Path, frames_dir: Path, stride: int, max_frames: int | None) -> None:
    """Write every ``stride``-th frame (at most ``max_frames``) as JPEG quality 95."""
    for old in list_images(frames_dir) if frames_dir.is_dir() else []:
        old.unlink()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            total = stream.frames or None
            expected = None if total is None else min((total + stride - 1) // stride, max_frames or total)
            written = 0
            with tqdm(total=expected, desc=f"decoding {path.name}", unit="frame", leave=False) as progress:
                for index, frame in enumerate(container.decode(stream)):
                    if index % stride:
                        continue
                    buffer = io.BytesIO()
                    Image.fromarray(frame.to_ndarray(format="rgb24")).save(buffer, format="JPEG", quality=95)
                    atomic_write_bytes(frames_dir / f"{frame_stem(index)}.jpg", buffer.getvalue())
                    written += 1
                    progress.update()
                    if max_frames is not None and written >= max_frames:
                        break
    except av.FFmpegError as error:
        raise ValueError(f"cannot decode video {path}: {error}") from error


def load(path: Path, options: LoadOptions) -> Scene:
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    frames_dir = options.cache_dir / "frames"
    stat = path.stat()
    stamp = {
        "video": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "stride": options.video_stride,
        "max_frames": options.video_max_frames,
    }
    stamp_path = frames_dir / STAMP_FILE
    with exclusive_lock(options.cache_dir / ".frames.lock", f"the frames of {path}"):
        if not (stamp_path.is_file() and json.loads(stamp_path.read_text()) == stamp):
            _decode(path, frames_dir, options.video_stride, options.video_max_frames)
            atomic_write_bytes(stamp_path, json.dumps(stamp).encode())
    frames = list_images(frames_dir)
    require_views(len(frames), path, "decoded frames")
    with Image.open(frames[0]) as first:
        width, height = first.size
    views = [View(frame.name, frame, width, height) for frame in frames]
    return Scene(path, views, "video", options.cache_dir)
