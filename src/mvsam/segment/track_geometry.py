"""Tracking through the views of a static scene by 3D: a voxel memory of the object carries it across views.

Flow breaks on wide camera jumps; geometry does not. Every confident mask votes into a
:class:`~mvsam.lift.votes.VoxelVotes` table through its view's depth (voxels inside the mask vote object, the
rest of the view votes background). A new view sees, through its own depth, which remembered voxels are on
its surface: their vote share is the carried footprint, with occlusion handled by the depth itself. Pixels
without depth see the remembered voxels z-buffer splatted instead. The footprint gives SAM its prompts (box,
interior points, negative points on remembered background, a low-res mask) and is the yardstick a SAM mask
must agree with, so the object is found again whenever its remembered surface comes back into view.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from mvsam.io.video import FrameSource
from mvsam.lift.votes import ViewVoxels, VoxelVotes
from mvsam.lift.voxels import VoxelGrid, default_voxel_size
from mvsam.sam.predictor import Prompt, upscale_logits
from mvsam.scene import Camera, Scene
from mvsam.segment.masks import peak_points
from mvsam.segment.prompting import image_mask_to_low_res_logits
from mvsam.segment.track import (
    FrameResult,
    Tracker,
    TrackPrompt,
    mask_box,
    one_thread,
    validate_prompt,
)

log = logging.getLogger(__name__)

VOXEL_SAMPLE_VIEWS = 8  # views whose depth sets the voxel size
PROMPT_WEIGHT = 2.0  # the user's mask outvotes one tracked view


@dataclass
class Carried:
    """The 3D memory seen from one view, at the frame size.

    ``mask``: HxW bool, pixels whose surface the memory calls object. ``known``: HxW bool, pixels the memory
    has an opinion on (object or background); pixels with depth whose voxel was never seen are unknown, e.g.
    the far side of the object after a large camera jump. Pixels with neither depth nor a remembered voxel
    count as background: the object's remembered surface would have landed there.
    """

    mask: np.ndarray
    known: np.ndarray


def check_scene(scene: Scene, frame_count: int) -> None:
    """ValueError unless the scene has one view per frame, each with a camera and depth."""
    if len(scene) != frame_count:
        raise ValueError(
            f"the scene has {len(scene)} views but there are {frame_count} frames; give one per frame"
        )
    if not scene.has_cameras or not scene.has_depth:
        raise ValueError(
            "geometry tracking needs cameras and depth for every view; call scene.geometry() first"
        )


class GeometryCarrier:
    """Voxel votes of confident masks, and their footprint in any view of the scene."""

    def __init__(self, scene: Scene, max_side: int, splat_radius: int, voxel_factor: float) -> None:
        self.scene = scene
        self.max_side = max_side
        self.splat_radius = splat_radius
        step = max(1, len(scene) // VOXEL_SAMPLE_VIEWS)
        sample = [self._raster(i) for i in range(0, len(scene), step)]
        size = default_voxel_size([c for c, _ in sample], [d for _, d in sample], voxel_factor)
        self.votes = VoxelVotes(VoxelGrid(size))
        self._located: tuple[int, ViewVoxels] | None = None

    def _raster(self, index: int) -> tuple[Camera, np.ndarray]:
        """The view's camera and its depth resized (nearest) to at most ``max_side``: HxW float32."""
        view = self.scene.views[index]
        depth = np.asarray(view.depth, dtype=np.float32)
        scale = min(1.0, self.max_side / max(view.width, view.height))
        size = (max(1, round(view.width * scale)), max(1, round(view.height * scale)))
        if (depth.shape[1], depth.shape[0]) != size:
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        return view.camera, depth

    def _locate(self, index: int) -> tuple[Camera, np.ndarray, ViewVoxels]:
        camera, depth = self._raster(index)
        if self._located is None or self._located[0] != index:
            self._located = (index, self.votes.locate(camera, depth))
        return camera, depth, self._located[1]

    def carry(self, index: int, frame_size: tuple[int, int]) -> Carried:
        """The memory's footprint in view ``index``, at ``frame_size`` (height, width)."""
        camera, depth, located = self._locate(index)
        footprint = self.votes.footprint(located)
        missing = ~located.hit
        if np.any(missing) and len(self.votes):
            height, width = depth.shape
            splat = self.votes.locate(camera, None, width, height, self.splat_radius)
            footprint[missing] = self.votes.footprint(splat)[missing]
        unknown = np.isnan(footprint) & located.hit
        obj = np.nan_to_num(footprint, nan=0.0) > 0.5
        height, width = frame_size
        obj = cv2.resize(obj.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
        unknown = (
            cv2.resize(unknown.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR) > 0.5
        )
        side = max(3, int(0.01 * max(height, width)) | 1)  # close voxel-aliasing gaps and depth holes
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
        obj = cv2.morphologyEx(obj.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
        return Carried(mask=obj, known=~unknown | obj)

    def remember(self, index: int, mask: np.ndarray, weight: float = 1.0) -> None:
        """Vote with a HxW bool mask of view ``index`` (any size; resampled to the depth raster)."""
        _, depth, located = self._locate(index)
        height, width = depth.shape
        soft = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
        self.votes.vote(located, np.clip(soft, 0.0, 1.0), weight)


@dataclass
class _Decoded:
    mask: np.ndarray  # HxW bool, frame size
    score: float  # SAM's predicted IoU
    agreement: float  # IoU with the carried mask over the pixels the memory knows


def to_mosaic_points(points: np.ndarray, tile) -> np.ndarray:
    """Nx2 (x, y) frame pixels -> Mx2 mosaic pixels of a tile, dropping the points outside its crop."""
    inside = (
        (points[:, 0] >= tile.x0)
        & (points[:, 0] < tile.x1)
        & (points[:, 1] >= tile.y0)
        & (points[:, 1] < tile.y1)
    )
    origin = np.array([tile.x0, tile.y0], np.float64)
    cell = np.array([tile.cell_x, tile.cell_y], np.float64)
    return ((points[inside] - origin + 0.5) * tile.scale - 0.5 + cell).reshape(-1, 2)


def known_iou(candidate: np.ndarray, carried: Carried) -> float:
    """IoU of a HxW bool mask with the carried mask, counting only pixels the memory knows."""
    inside = candidate & carried.known
    union = np.count_nonzero(inside | carried.mask)
    return np.count_nonzero(inside & carried.mask) / union if union else 0.0


class GeometricTracker:
    """Propagates one object through the views of a static scene with cameras and depth."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.config = tracker.config

    def _negative_points(self, carried: Carried, box: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
        """Nx2 (x, y) points on remembered background inside the box grown by half its size."""
        height, width = frame_size
        x0, y0, x1, y1 = box
        grow_x, grow_y = (x1 - x0) / 2, (y1 - y0) / 2
        region = np.zeros(frame_size, bool)
        region[
            int(max(0, y0 - grow_y)) : int(min(height, y1 + grow_y + 1)),
            int(max(0, x0 - grow_x)) : int(min(width, x1 + grow_x + 1)),
        ] = True
        return peak_points(region & carried.known & ~carried.mask, self.config.negative_points)

    def _segment(self, frame: np.ndarray, carried: Carried) -> _Decoded | None:
        """SAM on one crop around the carried mask (one crop per encoding), best candidate by agreement."""
        tracker = self.tracker
        (tile,) = tracker._layout([carried.mask], grid=1)
        embedding = tracker._encode_mosaic([frame], [tile])
        carried_mosaic = tile.mask_to_mosaic(carried.mask)
        box = mask_box(carried_mosaic)
        if box is None:
            return None
        positives = peak_points(carried_mosaic, self.config.positive_points)
        negatives = self._negative_points(carried, mask_box(carried.mask), carried.mask.shape)
        negatives = to_mosaic_points(negatives, tile)
        points = np.concatenate([positives, negatives])
        labels = np.concatenate([np.ones(len(positives), np.int64), np.zeros(len(negatives), np.int64)])
        with one_thread():
            low_res = image_mask_to_low_res_logits(carried_mosaic, embedding.input_size)
            requests = [(embedding, Prompt(box=box, mask_logits=low_res))]
            single = tracker.predictor.predict_batch(requests, multimask=False, return_masks=False)
            # Without the box too: a footprint that is partial (the far side of the object is not yet
            # remembered) gives too small a box, and only the known pixels judge the candidates.
            requests = [
                (embedding, Prompt(points=points, labels=labels, box=box)),
                (embedding, Prompt(points=points, labels=labels)),
            ]
            multi = tracker.predictor.predict_batch(requests, multimask=True, return_masks=False)
        logits = np.concatenate([single[0].low_res_logits, *(m.low_res_logits for m in multi)])
        scores = np.concatenate([single[0].scores, *(m.scores for m in multi)])
        with torch.inference_mode():
            mosaic_logits = upscale_logits(torch.from_numpy(logits)[None], embedding)[0].numpy()
        masks = [tile.logits_to_frame(m, carried.mask.shape) for m in mosaic_logits]
        agreement = np.array([known_iou(m, carried) for m in masks])
        best = int(np.argmax(agreement + 0.05 * scores))
        return _Decoded(masks[best], float(scores[best]), float(agreement[best]))

    def _step(self, index: int, frame: np.ndarray, carrier: GeometryCarrier) -> FrameResult:
        """Carry, segment, check; a SAM mask that disagrees with the memory is replaced by the footprint."""
        config = self.config
        carried = carrier.carry(index, frame.shape[:2])
        if carried.mask.sum() < config.min_area:
            return FrameResult(index, np.zeros(frame.shape[:2], bool), 0.0, False, "absent")
        decoded = self._segment(frame, carried)
        if decoded is not None:
            log.debug("view %d: SAM score %.3f, agreement %.3f", index, decoded.score, decoded.agreement)
        if decoded is None or decoded.agreement < config.accept_iou:
            score = 0.0 if decoded is None else decoded.score * decoded.agreement
            return FrameResult(index, carried.mask, score, True, "geometry")
        if decoded.agreement >= config.geometry_memory_iou and decoded.score >= config.memory_score:
            carrier.remember(index, decoded.mask)
        return FrameResult(index, decoded.mask, decoded.score * decoded.agreement, True, "sam")

    def track(self, frames: FrameSource, prompt: TrackPrompt, scene: Scene) -> Iterator[FrameResult]:
        """Results for every view: the prompt view, then forwards to the end, then backwards to 0."""
        validate_prompt(prompt, frames)
        check_scene(scene, len(frames))
        ((_, image),) = list(frames.iterate(range(prompt.frame, prompt.frame + 1)))
        mask, score = self.tracker._initial_mask(image, prompt)
        config = self.config
        carrier = GeometryCarrier(scene, config.geometry_max_side, config.splat_radius, config.voxel_factor)
        carrier.remember(prompt.frame, mask, weight=PROMPT_WEIGHT)
        yield FrameResult(prompt.frame, mask, score, True, "prompt")
        for indices in (range(prompt.frame + 1, len(frames)), range(prompt.frame - 1, -1, -1)):
            for index, frame in frames.iterate(indices):
                yield self._step(index, frame, carrier)
