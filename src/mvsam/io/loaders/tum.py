"""TUM RGB-D benchmark layout: ``rgb.txt depth.txt groundtruth.txt`` + the ``rgb/`` and ``depth/`` images.

Each colour frame is paired with the nearest depth frame and the nearest ground-truth pose, each within
0.02 s; unpaired frames are skipped with one warning. Ground truth is ``t tx ty tz qx qy qz qw``,
camera-to-world with OpenCV axes. Depth PNGs hold 5000 units per metre. Intrinsics come from an optional
``intrinsics.txt`` (one line ``fx fy cx cy``); without it the freiburg1 defaults are used, with a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from mvsam.io.conventions import tum_to_world_from_cam
from mvsam.io.loaders.common import (
    LoadOptions,
    Notes,
    make_camera,
    probe_images,
    require_file,
    require_single_size,
    require_views,
)
from mvsam.io.loaders.rgbd import confidence_of, read_depth_png
from mvsam.scene import Scene, View

LIST_FILES = ("rgb.txt", "depth.txt", "groundtruth.txt")
MAX_TIME_DIFFERENCE = 0.02  # seconds
DEPTH_UNITS_PER_METRE = 5000.0
FREIBURG1 = (517.3, 516.5, 318.6, 255.3)  # fx fy cx cy of the fr1 sequences


def detect(root: Path) -> bool:
    return all((root / name).is_file() for name in LIST_FILES)


def _read_list(path: Path, columns: int) -> tuple[np.ndarray, list[list[str]]]:
    """(N timestamps, N rows of the other ``columns - 1`` fields) of a TUM list; '#' starts a comment."""
    require_file(path, "TUM list file")
    stamps, rows = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) != columns:
            raise ValueError(f"{path}:{number}: expected {columns} fields, got {len(fields)}")
        try:
            stamps.append(float(fields[0]))
        except ValueError as error:
            raise ValueError(f"{path}:{number}: bad timestamp {fields[0]!r}") from error
        rows.append(fields[1:])
    return np.asarray(stamps, dtype=np.float64), rows


def _nearest(stamps: np.ndarray, query: float) -> int | None:
    """Index of the timestamp nearest to ``query`` if within MAX_TIME_DIFFERENCE, else None."""
    if len(stamps) == 0:
        return None
    order = np.argsort(stamps)
    position = np.searchsorted(stamps[order], query)
    candidates = order[max(position - 1, 0) : position + 1]
    best = candidates[np.argmin(np.abs(stamps[candidates] - query))]
    return int(best) if abs(stamps[best] - query) <= MAX_TIME_DIFFERENCE else None


def _intrinsics(root: Path, notes: Notes) -> np.ndarray:
    path = root / "intrinsics.txt"
    if path.is_file():
        values = [line.split() for line in path.read_text().splitlines() if line.strip() and line[0] != "#"]
        if len(values) != 1 or len(values[0]) != 4:
            raise ValueError(f"{path}: expected one line 'fx fy cx cy'")
        fx, fy, cx, cy = (float(v) for v in values[0])
    else:
        fx, fy, cx, cy = FREIBURG1
        notes.warn(f"{root}: no intrinsics.txt, assuming the TUM freiburg1 camera (fx={fx}, fy={fy})")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def load(root: Path, options: LoadOptions) -> Scene:
    rgb_stamps, rgb_rows = _read_list(root / "rgb.txt", 2)
    depth_stamps, depth_rows = _read_list(root / "depth.txt", 2)
    pose_stamps, pose_rows = _read_list(root / "groundtruth.txt", 8)
    notes = Notes()
    K = _intrinsics(root, notes)
    pairs = []
    for stamp, (name,) in zip(rgb_stamps, rgb_rows, strict=True):
        depth_index, pose_index = _nearest(depth_stamps, stamp), _nearest(pose_stamps, stamp)
        if depth_index is not None and pose_index is not None:
            pairs.append((root / name, root / depth_rows[depth_index][0], pose_rows[pose_index]))
    if len(pairs) < len(rgb_rows):
        notes.warn(
            f"{root}: skipped {len(rgb_rows) - len(pairs)} of {len(rgb_rows)} colour frames with no depth "
            f"and pose within {MAX_TIME_DIFFERENCE} s"
        )
    for path, _, _ in pairs:
        require_file(path, "colour image listed in rgb.txt")
    sizes = probe_images([path for path, _, _ in pairs], notes)
    if not sizes:
        require_views(0, root)
    size = require_single_size(sizes, "TUM sequences have one camera")
    views = []
    for path, depth_path, pose in tqdm(
        pairs, desc="reading RGB-D frames", unit="frame", disable=len(pairs) < 50, leave=False
    ):
        if path not in sizes:
            continue
        try:
            numbers = np.asarray(pose, dtype=np.float64)
            world_from_cam = tum_to_world_from_cam(numbers[:3], numbers[3:])
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: bad pose {pose}: {error}")
            continue
        camera = make_camera(path.name, K, world_from_cam, size, notes)
        if camera is None:
            continue
        try:
            depth = read_depth_png(depth_path, DEPTH_UNITS_PER_METRE)
        except ValueError as error:
            notes.warn(f"skipped view {path.name}: {error}")
            continue
        if depth.shape != (size[1], size[0]):
            raise ValueError(
                f"{depth_path} is {depth.shape[1]}x{depth.shape[0]}, its colour image {size[0]}x{size[1]}"
            )
        views.append(
            View(path.name, path, *size, camera=camera, depth=depth, depth_confidence=confidence_of(depth))
        )
    require_views(len(views), root)
    return Scene(root, views, "tum", options.cache_dir, notes=notes.lines)
