"""Automatic mode for a video without camera geometry: every object, one id through all frames.

Built on the video tracker (:class:`~mvsam.segment.track.ObjectsPass`): keyframes (frame 0, then every
``video_keyframe_stride`` frames) get SAM's automatic masks, reduced to whole objects (parts inside a larger
mask dropped, :func:`~mvsam.segment.auto.whole_masks`), without background regions that span the frame,
and the ``video_max_objects`` largest. On frame 0
they start the objects. On a later keyframe, a mask that holds most of one object and otherwise unlabelled
pixels is that whole object where the tracker kept only a part, so the object takes it; a mask mostly over
unlabelled pixels either re-identifies a lost object (its pixels look like that object in the tracker's
appearance memory, the tracker's own re-detection bar) or, while fewer than ``video_max_objects`` objects are
present, starts a new one. Between keyframes
every object is carried by the tracker's machinery (flow, one shared encoder pass per frame, SAM on crops,
appearance memory, motion model, re-detection after occlusion); masks stay disjoint and ids stable.
Objects run forwards only: one that starts on a later keyframe is unlabelled on the frames before it.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
from tqdm import tqdm

from mvsam.io.video import FolderFrames
from mvsam.sam.predictor import SamPredictor
from mvsam.scene import Scene
from mvsam.segment.auto import AutoConfig, AutoObject, AutoResult, AutoSeconds, automatic_setup, whole_masks
from mvsam.segment.track import ObjectsPass, ObjectsResult, Tracker, TrackerConfig, is_background

# A keyframe mask starts or revives an object only where at least this share of it is unlabelled.
FREE_SHARE = 0.7
# A keyframe mask holding >= WHOLE_SHARE of a present object, with <= OTHERS_SHARE of it on other objects,
# at most MAX_GROWTH times the object's area and adding >= GROWTH of it in unlabelled pixels, is the whole
# of an object the tracker holds only in part: the object takes it.
WHOLE_SHARE, OTHERS_SHARE, MAX_GROWTH, GROWTH = 0.8, 0.05, 2.0, 0.1


class VideoAutoSegmenter:
    """Every object in every frame of a video (a scene of frames in time order, no geometry needed)."""

    def __init__(
        self,
        scene: Scene,
        predictor: SamPredictor | None = None,
        config: AutoConfig | None = None,
        progress: bool = True,
        tracker_config: TrackerConfig | None = None,
    ) -> None:
        self.scene = scene
        self.progress = progress
        config = config or AutoConfig()
        grid = replace(config, points_per_side=config.video_points_per_side)
        _, self.predictor, self.generator = automatic_setup(scene, predictor, grid)
        self.config = config
        self.tracker = Tracker(self.predictor, tracker_config)

    def keyframe_masks(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """(HxW bool mask, SAM predicted IoU) of the whole objects SAM finds in one frame, largest first,
        at most ``video_max_objects``; masks under ``min_mask_share`` of the frame and background regions
        (spanning the frame, :func:`~mvsam.segment.track.is_background`) are dropped. On the tuning videos'
        frame 0 (davis2016_train8, 8x8 grid) the annotated object ranks 1-7 among these (swing: 9th of all
        whole masks, 7th without the background ones)."""
        cfg = self.config
        min_pixels = max(cfg.min_object_pixels, cfg.min_mask_share * image.shape[0] * image.shape[1])
        masks = [
            (item.segmentation, float(item.predicted_iou))
            for item in self.generator.generate(image)
            if np.count_nonzero(item.segmentation) >= min_pixels
        ]
        if cfg.granularity == "whole" and masks:
            masks = whole_masks(masks, cfg.part_containment, cfg.part_share)
        masks = [m for m in masks if not is_background(m[0])]
        masks.sort(key=lambda m: -np.count_nonzero(m[0]))
        return masks[: cfg.video_max_objects]

    def _join(self, run: ObjectsPass, ids: np.ndarray, image: np.ndarray, scores: dict[int, list]) -> None:
        """Keyframe masks on ``ids`` (HxW int32, updated in place): a mask holding most of one present
        object and otherwise unlabelled pixels gives that object its missing parts back; a mask mostly over
        unlabelled pixels revives a lost object or starts a new one in ``run``."""
        cfg = self.config
        lost = run.lost()
        present = len(run.object_ids) - len(lost)
        for mask, score in self.keyframe_masks(image):
            free = mask & (ids == 0)
            areas = np.bincount(ids.reshape(-1))
            held = np.bincount(ids[mask], minlength=len(areas))
            held[0] = 0
            owner = int(np.argmax(held))
            if (
                held[owner] >= WHOLE_SHARE * areas[owner]
                and held.sum() - held[owner] <= OTHERS_SHARE * mask.sum()
            ):
                if (
                    np.count_nonzero(free) >= GROWTH * areas[owner]
                    and mask.sum() <= MAX_GROWTH * areas[owner]
                ):
                    grown = free | (ids == owner)
                    run.reseat(owner, grown)
                    ids[grown] = owner
                continue
            if np.count_nonzero(free) < FREE_SHARE * np.count_nonzero(mask):
                continue
            likeness = {i: run.resemblance(i, free) for i in lost}
            best = max(likeness, key=likeness.get, default=None)
            if best is not None and likeness[best] >= self.tracker.config.redetect_share:
                run.reseat(best, free)
                lost.remove(best)
                object_id = best
            elif present < cfg.video_max_objects:
                object_id = len(scores) + 1
                run.add(object_id, free)
                scores[object_id] = []
            else:
                continue
            present += 1
            ids[free] = object_id
            scores[object_id].append(score)

    def run(self) -> AutoResult:
        cfg = self.config
        start = time.perf_counter()
        seconds = AutoSeconds()
        views = self.scene.views
        frames = FolderFrames([v.image_path for v in views], (views[0].height, views[0].width))
        run = ObjectsPass(self.tracker, frames, 0)
        keyframes = list(range(0, len(views), cfg.video_keyframe_stride))
        maps: list[np.ndarray] = []
        scores: dict[int, list[float]] = {}  # object id -> SAM scores of its masks
        bar = tqdm(total=len(views), desc="automatic video", disable=not self.progress)
        ids = np.zeros(frames.size, np.int32)
        for keyframe in keyframes:
            tick = time.perf_counter()
            for result in run.advance(keyframe + 1) if keyframe > run.frame else ():
                ids = self._record(result, maps, scores, frames.size)
                bar.update()
            seconds.decode += time.perf_counter() - tick
            tick = time.perf_counter()
            self._join(run, ids, views[keyframe].load_image(), scores)
            maps[keyframe:] = [ids.astype(np.uint16)]
            bar.update(keyframe == 0)
            seconds.keyframe_masks += time.perf_counter() - tick
        tick = time.perf_counter()
        for result in run.advance(len(views)) if run.frame + 1 < len(views) else ():
            self._record(result, maps, scores, frames.size)
            bar.update()
        seconds.decode += time.perf_counter() - tick
        bar.close()
        return self._result(maps, scores, keyframes, seconds, start)

    @staticmethod
    def _record(result: ObjectsResult, maps: list, scores: dict, size: tuple[int, int]) -> np.ndarray:
        """Append one frame's id map (HxW uint16) and its objects' scores; returns the map as int32."""
        ids = np.zeros(size, np.int32)
        for object_id, found in result.objects.items():
            if found.present and found.mask.any():
                ids[found.mask] = object_id
                scores[object_id].append(found.score)
        maps.append(ids.astype(np.uint16))
        return ids

    def _result(self, maps, scores: dict, keyframes: list[int], seconds: AutoSeconds, start: float):
        """Ids renumbered 1, 2, ... in order of first appearance; per-object views, areas and scores."""
        first_seen: dict[int, int] = {}
        for index, full in enumerate(maps):
            for label in np.unique(full[full > 0]):
                first_seen.setdefault(int(label), index)
        order = sorted(first_seen, key=lambda k: (first_seen[k], k))
        to_id = np.zeros(max(scores, default=0) + 1, dtype=np.uint16)
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
            objects.append(AutoObject(new_id, list(area), area, float(np.mean(scores[label])), None, None))
        coverage = float(sum(np.count_nonzero(m) for m in maps) / max(sum(m.size for m in maps), 1))
        seconds.total = time.perf_counter() - start
        notes = [
            "video without camera geometry: ids carried by the video tracker (flow, SAM, appearance "
            "memory), no 3D points"
        ]
        return AutoResult(self.scene, objects, keyframes, coverage, seconds, notes, maps, {})
