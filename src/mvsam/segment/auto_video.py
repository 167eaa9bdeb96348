"""Automatic mode for a video without camera geometry: every object, one id through all frames.

MastSAM's point tracking with dense flow instead of 3D: keyframes (every ``video_keyframe_stride`` frames)
get SAM's automatic masks; every live object is carried from one frame to the next with dense optical flow
(OpenCV DIS) on the working raster, re-prompted from the carried footprint (box, interior points, nearby
negatives) in one batched SAM pass per frame, and kept when SAM's mask agrees with the carried shape.
Overlaps are resolved per pixel (the carried footprint, then the logit). A keyframe mask over unlabelled
pixels either re-identifies a lost object (cosine similarity of SAM features inside the masks) or starts a
new one, so an object that leaves and comes back keeps its id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.sam.masks import upscale_low_res_logits
from mvsam.sam.predictor import ImageEmbedding, SamPredictor
from mvsam.scene import Scene
from mvsam.segment.auto import (
    AutoConfig,
    AutoObject,
    AutoResult,
    AutoSeconds,
    automatic_setup,
    whole_masks,
)
from mvsam.segment.candidates import choose_candidate
from mvsam.segment.masks import keep_large_components, resize_mask
from mvsam.segment.prompting import footprint_prompt, working_size

# A lost object comes back when a new keyframe mask's SAM features match its own this well (cosine).
REID_SIMILARITY = 0.9
# A keyframe mask starts or revives an object only where at least this share of it is unlabelled.
FREE_SHARE = 0.7


@dataclass
class _Track:
    """One object through time; ``mask`` is its working-raster mask on the last frame it was seen."""

    label: int  # internal label, 1-based, in order of creation
    mask: np.ndarray
    feature: np.ndarray  # 256 float32, unit-length mean SAM feature inside the masks so far
    alive: bool = True
    scores: list[float] | None = None


def mask_feature(embedding: ImageEmbedding, mask: np.ndarray) -> np.ndarray | None:
    """Unit-length mean of the 64x64 SAM features inside a working-raster mask (256 floats), or None."""
    features = embedding.features[0].numpy()  # 256x64x64 over the padded 1024^2 input
    grid = np.zeros((256, 256), dtype=np.float32)
    grid[: mask.shape[0], : mask.shape[1]] = mask
    weights = cv2.resize(grid, (64, 64), interpolation=cv2.INTER_AREA)
    if weights.sum() <= 0:
        return None
    mean = (features * weights).sum(axis=(1, 2)) / weights.sum()
    return mean / max(float(np.linalg.norm(mean)), 1e-9)


class VideoAutoSegmenter:
    """Every object in every frame of a video (a scene of frames in time order, no geometry needed)."""

    def __init__(
        self,
        scene: Scene,
        predictor: SamPredictor | None = None,
        config: AutoConfig | None = None,
        progress: bool = True,
    ) -> None:
        self.scene = scene
        self.progress = progress
        self.config, self.predictor, self.generator = automatic_setup(scene, predictor, config)
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def _carry(self, previous: np.ndarray, current: np.ndarray, masks: list[np.ndarray]) -> list[np.ndarray]:
        """Masks of the previous frame moved into the current one along dense flow (working raster)."""
        flow = self.flow.calc(current, previous, None)  # for each current pixel, where it was before
        height, width = current.shape
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]
        return [
            cv2.remap(m.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR, borderValue=0) > 0.5
            for m in masks
        ]

    def _keyframe_masks(self, image: np.ndarray, size: tuple[int, int]) -> list[tuple[np.ndarray, float]]:
        min_pixels = max(self.config.min_object_pixels, self.config.min_mask_share * size[0] * size[1])
        masks = []
        for item in self.generator.generate(image):
            mask = resize_mask(item.segmentation, size)
            if np.count_nonzero(mask) >= min_pixels:
                masks.append((mask, float(item.predicted_iou)))
        if self.config.granularity == "whole":
            masks = whole_masks(masks, self.config.part_containment, self.config.part_share)
        return sorted(masks, key=lambda m: -np.count_nonzero(m[0]))

    def run(self) -> AutoResult:
        cfg = self.config
        start = time.perf_counter()
        seconds = AutoSeconds()
        tracks: list[_Track] = []
        maps: list[np.ndarray] = []
        previous_gray = None
        for index, view in enumerate(
            tqdm(self.scene.views, desc="automatic video", disable=not self.progress)
        ):
            tick = time.perf_counter()
            image = view.load_image()
            embedding = self.predictor.encode(image)
            size = working_size((view.height, view.width))
            gray = cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
            seconds.encode += time.perf_counter() - tick

            tick = time.perf_counter()
            live = [t for t in tracks if t.alive]
            carried = self._carry(previous_gray, gray, [t.mask for t in live]) if live else []
            decoded = self._decode(embedding, (view.width, view.height), live, carried)
            seconds.decode += time.perf_counter() - tick

            tick = time.perf_counter()
            owner = self._resolve(decoded, size)
            if index % cfg.video_keyframe_stride == 0:
                seconds.resolve += time.perf_counter() - tick
                tick = time.perf_counter()
                for mask, score in self._keyframe_masks(image, size):
                    free = mask & (owner == 0)
                    if np.count_nonzero(free) < FREE_SHARE * np.count_nonzero(mask):
                        continue
                    track = self._revive_or_start(tracks, embedding, free, score)
                    decoded.append((track, free, np.where(free, 8.0, -8.0).astype(np.float32), score))
                    owner = self._resolve(decoded, size)
                seconds.keyframe_masks += time.perf_counter() - tick
                tick = time.perf_counter()
            seen = set()
            for track, _, _, score in decoded:
                own = owner == track.label
                if np.count_nonzero(own) >= cfg.min_object_pixels:
                    track.mask, track.alive = own, True
                    track.scores = (track.scores or []) + [score]
                    seen.add(track.label)
            for track in live:
                track.alive = track.label in seen
            maps.append(self._full_map(decoded, owner, embedding, (view.height, view.width)))
            previous_gray = gray
            seconds.resolve += time.perf_counter() - tick
        return self._result(tracks, maps, seconds, start)

    def _decode(self, embedding, full_size, live: list[_Track], carried: list[np.ndarray]) -> list[tuple]:
        """(track, carried footprint, h x w logits, score) for the live tracks SAM still finds."""
        requests, owners = [], []
        for track, footprint in zip(live, carried, strict=True):
            footprint = keep_large_components(footprint, self.config.min_object_pixels)
            prompt = footprint_prompt(footprint, ~footprint, full_size, self.config.prompts)
            if prompt is not None:
                requests.append((embedding, prompt))
                owners.append((track, footprint))
        out = []
        predictions = self.predictor.predict_batch(requests, multimask=True, return_masks=False)
        for (track, footprint), prediction in zip(owners, predictions, strict=True):
            best, agreement = choose_candidate(
                prediction.low_res_logits, prediction.scores, footprint, None, self.config.weights
            )
            if agreement >= self.config.min_agreement:
                height, width = footprint.shape
                logits = prediction.low_res_logits[best][:height, :width]
                out.append((track, footprint, logits, float(prediction.scores[best])))
        return out

    def _priority(self, footprint: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return np.where(logits > 0, logits + self.config.footprint_bonus * footprint, -np.inf)

    def _resolve(self, decoded: list[tuple], size: tuple[int, int]) -> np.ndarray:
        """h x w owner labels (0 = none) of the decoded tracks on the working raster."""
        best = np.full(size[::-1], -np.inf, dtype=np.float32)
        owner = np.zeros(size[::-1], dtype=np.int32)
        for track, footprint, logits, _ in decoded:
            priority = self._priority(footprint, logits)
            wins = priority > best
            best[wins], owner[wins] = priority[wins], track.label
        return owner

    def _full_map(self, decoded, owner: np.ndarray, embedding: ImageEmbedding, shape) -> np.ndarray:
        """Full-resolution labels: upscaled logits of each track, restricted to near its working pixels."""
        best = np.full(shape, -np.inf, dtype=np.float32)
        full = np.zeros(shape, dtype=np.uint16)
        for track, footprint, logits, _ in decoded:
            if not np.any(owner == track.label):
                continue
            padded = np.full((256, 256), -20.0, dtype=np.float32)
            padded[: logits.shape[0], : logits.shape[1]] = logits
            up = upscale_low_res_logits(padded[None], embedding.input_size, embedding.original_size)[0]
            own = cv2.resize(
                (owner == track.label).astype(np.uint8), shape[::-1], interpolation=cv2.INTER_NEAREST
            )
            bonus = cv2.resize(footprint.astype(np.uint8), shape[::-1], interpolation=cv2.INTER_NEAREST)
            near = cv2.dilate(own, np.ones((9, 9), np.uint8)) > 0
            priority = np.where((up > 0) & near, up + self.config.footprint_bonus * bonus, -np.inf)
            wins = priority > best
            best[wins], full[wins] = priority[wins], track.label
        return full

    def _revive_or_start(self, tracks: list[_Track], embedding, mask: np.ndarray, score: float) -> _Track:
        feature = mask_feature(embedding, mask)
        lost = [t for t in tracks if not t.alive]
        if feature is not None and lost:
            similarity = [float(feature @ t.feature) for t in lost]
            best = int(np.argmax(similarity))
            if similarity[best] >= REID_SIMILARITY:
                lost[best].alive, lost[best].mask = True, mask
                return lost[best]
        track = _Track(len(tracks) + 1, mask, feature if feature is not None else np.zeros(256, np.float32))
        tracks.append(track)
        return track

    def _result(self, tracks: list[_Track], maps: list[np.ndarray], seconds: AutoSeconds, start: float):
        first_seen = {}
        for index, full in enumerate(maps):
            for label in np.unique(full[full > 0]):
                first_seen.setdefault(int(label), index)
        order = sorted(first_seen, key=lambda k: (first_seen[k], k))
        to_id = np.zeros(len(tracks) + 1, dtype=np.uint16)
        for new_id, label in enumerate(order, start=1):
            to_id[label] = new_id
        maps = [to_id[m] for m in maps]
        objects = []
        for new_id, label in enumerate(order, start=1):
            area = {}
            for view, full in zip(self.scene.views, maps, strict=True):
                count = int(np.count_nonzero(full == new_id))
                if count:
                    area[view.name] = count
            scores = tracks[label - 1].scores or [0.0]
            objects.append(AutoObject(new_id, list(area), area, float(np.mean(scores)), None, None))
        coverage = float(sum(np.count_nonzero(m) for m in maps) / max(sum(m.size for m in maps), 1))
        seconds.total = time.perf_counter() - start
        notes = ["video without camera geometry: ids linked through dense optical flow, no 3D points"]
        return AutoResult(
            self.scene,
            objects,
            list(range(0, len(maps), self.config.video_keyframe_stride)),
            coverage,
            seconds,
            notes,
            maps,
            {},
        )
