"""Streaming frame sources for tracking: a folder of frames or a video file, read one frame at a time.

Nothing here holds more than a bounded number of frames in memory, so a tracker over a long video keeps a
flat footprint. Videos are decoded with PyAV; running backwards through a video decodes it again in chunks
(decoding 480p is cheap next to SAM), never the whole video at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from mvsam.errors import InputError
from mvsam.io.images import image_size, list_images, read_rgb

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
FRAME_DIGITS = 6  # frame names of a video file: 000000, 000001, ... (enough for 3 hours at 60 fps)
REVERSE_CHUNK = 32  # frames decoded at a time when a video is read backwards


@dataclass
class FolderFrames:
    """Frames stored as image files in one folder, in name order; stems are the file stems."""

    paths: list[Path]
    size: tuple[int, int]  # (height, width) of every frame

    @property
    def stems(self) -> list[str]:
        return [path.stem for path in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as HxWx3 uint8 RGB."""
        image = read_rgb(self.paths[index])
        if image.shape[:2] != self.size:
            raise InputError(
                f"{self.paths[index]}: frame is {image.shape[1]}x{image.shape[0]}, the first frame is "
                f"{self.size[1]}x{self.size[0]}; all frames must have one size"
            )
        return image

    def iterate(self, indices: range) -> Iterator[tuple[int, np.ndarray]]:
        """(index, HxWx3 uint8 frame) for each index, in the order given (ascending or descending)."""
        for index in indices:
            yield index, self.read(index)


@dataclass
class VideoFrames:
    """Frames of a video file decoded on demand; stems are zero-padded frame indices."""

    path: Path
    count: int
    size: tuple[int, int]  # (height, width)

    @property
    def stems(self) -> list[str]:
        return [frame_stem(index) for index in range(self.count)]

    def __len__(self) -> int:
        return self.count

    def _decode(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """Frames start..stop-1 in ascending order, decoding from the beginning of the file."""
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    if index >= stop:
                        break
                    if index >= start:
                        yield index, frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            raise InputError(f"cannot decode video {self.path}: {error}") from error

    def iterate(self, indices: range) -> Iterator[tuple[int, np.ndarray]]:
        """(index, HxWx3 uint8 frame) for each index; a descending range is decoded in chunks."""
        if len(indices) == 0:
            return
        if indices.step not in (1, -1):
            raise ValueError(f"video frames are read with step 1 or -1, got {indices.step}")
        if indices.step == 1:
            yield from self._decode(indices.start, indices.stop)
            return
        high, low = indices.start, indices.stop + 1  # inclusive bounds of the descending range
        while high >= low:
            chunk_low = max(low, high - REVERSE_CHUNK + 1)
            chunk = list(self._decode(chunk_low, high + 1))
            yield from reversed(chunk)
            high = chunk_low - 1


FrameSource = FolderFrames | VideoFrames


def frame_stem(index: int) -> str:
    """The one name of a video's frame ``index`` (its position in the file), for outputs and the cache."""
    return f"{index:0{FRAME_DIGITS}d}"


def _probe_video(path: Path) -> tuple[int, tuple[int, int]]:
    """(frame count, (height, width)) of a video, counting packets when the header has no count."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            size = (int(stream.codec_context.height), int(stream.codec_context.width))
            count = 0
            for frame in container.decode(stream):  # exact: header counts are often missing or wrong
                if count == 0:
                    size = (frame.height, frame.width)
                count += 1
    except av.FFmpegError as error:
        raise InputError(f"cannot read video {path}: {error}") from error
    if count == 0:
        raise InputError(f"{path}: the video has no decodable frames")
    return count, size


def open_frames(path: str | Path) -> FrameSource:
    """A frame folder (any image files, name order) or a video file, opened for streaming."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video or frame folder not found: {path}")
    if path.is_dir():
        paths = list_images(path)
        if not paths:
            raise InputError(f"{path}: the folder has no image files (expected frames such as 00000.jpg)")
        width, height = image_size(paths[0])
        return FolderFrames(paths, (height, width))
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames")
    count, size = _probe_video(path)
    return VideoFrames(path, count, size)
