"""Does the prompted object stay put? Multi-view segmentation assumes a static scene.

A moving object (a car in a video) is found in the prompted frame, but where its 3D points were at that
moment the other frames see road: the object ends up "visible in 1 of 20 views" and the user gets empty
masks without a word. The check counts the views that look at the object's 3D points (from the prompted
views' masks and depth) and how many of them found the object; a tiny share means the object moved (or the
geometry is wrong), and ``mvsam track`` is the tool for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mvsam.scene import Scene

MIN_DEPTH_PIXELS = 20  # object pixels with depth below which the depth around the object is used
RING = 0.02  # width of that ring around the object, as a share of the image diagonal
MAX_POINTS = 2000  # object points sampled from the prompted views
IN_VIEW = 0.5  # a view looks at the object when this share of its points projects into the image
MIN_EXPECTED = 4  # fewer views looking at the object: too little evidence to say anything
MIN_SEEN = 0.25  # found in a smaller share of the views that look at it: the object moved


@dataclass(frozen=True)
class MotionCheck:
    """How many views look at the prompted object (``expected``) and how many of them found it (``seen``);
    ``others`` counts all posed views that were not prompted and ``found`` those that found the object."""

    expected: int
    seen: int
    others: int
    found: int

    @property
    def moving(self) -> bool:
        """True when the object is missing from most views that look at where it was, or from every other
        view (a fast camera following a moving object looks away from where it was)."""
        missing_where_expected = self.expected >= MIN_EXPECTED and self.seen < MIN_SEEN * self.expected
        return missing_where_expected or (self.others >= MIN_EXPECTED and self.found == 0)

    def message(self, scene_name: str) -> str:
        if self.expected >= MIN_EXPECTED and self.seen < MIN_SEEN * self.expected:
            where = f"in only {self.seen} of the {self.expected} views that look at where it is when prompted"
        else:
            where = f"in none of the {self.others} other views with a camera"
        return (
            f"the object was found {where}: it probably moves. `mvsam segment` assumes a static scene; for a "
            f"moving object use `mvsam track {scene_name} --prompt 'frame=...,x=...,y=...'`"
        )


def _object_depth(mask: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Depth for the object's pixels: measured where valid. When the object has almost none (multi-view
    stereo drops a moving object: it is inconsistent between views), the median depth of a ring of pixels
    around it, where the object touches the scene, else of the whole view: what matters for "does another
    view look at it" is mostly the ray direction, which is exact."""
    valid = depth > 0
    if np.count_nonzero(mask & valid) >= MIN_DEPTH_PIXELS or not mask.any() or not valid.any():
        return depth
    radius = max(3, round(RING * float(np.hypot(*mask.shape))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    ring = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask & valid
    around = depth[ring] if ring.any() else depth[valid]
    return np.where(mask, np.float32(np.median(around)), depth)


def check_static_object(scene: Scene, masks: list[np.ndarray], prompted: list[int]) -> MotionCheck | None:
    """Count views that look at the prompted object's 3D points and views that found it.

    ``masks``: HxW bool per view (the segmentation's result). Points come from the prompted views' masks
    and depth (camera z; see ``_object_depth``); returns None when those views have no camera or depth.
    """
    rng = np.random.default_rng(0)
    points = []
    for index in prompted:
        view = scene.views[index]
        if view.camera is None or view.depth is None:
            continue
        depth = _object_depth(masks[index], view.depth)
        rows, cols = np.nonzero(masks[index] & (depth > 0))
        if len(rows) > MAX_POINTS:
            keep = rng.choice(len(rows), MAX_POINTS, replace=False)
            rows, cols = rows[keep], cols[keep]
        xy = np.stack([cols, rows], axis=1).astype(np.float64)
        points.append(view.camera.unproject(xy, depth[rows, cols]))
    if not points or not sum(len(p) for p in points):
        return None
    world = np.concatenate(points)
    expected = seen = others = found = 0
    for index, view in enumerate(scene.views):
        if index in prompted or view.camera is None:
            continue
        others += 1
        found += bool(masks[index].any())
        xy, z = view.camera.project(world)
        inside = (z > 0) & (xy[:, 0] >= -0.5) & (xy[:, 0] <= view.width - 0.5)
        inside &= (xy[:, 1] >= -0.5) & (xy[:, 1] <= view.height - 0.5)
        if inside.mean() >= IN_VIEW:
            expected += 1
            seen += bool(masks[index].any())
    return MotionCheck(expected, seen, others, found)
