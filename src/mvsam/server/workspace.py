"""The web app's engine: one scene, its objects and their prompt history, one inference lock. No HTTP here.

Every change works on a copy of the object's :class:`~mvsam.segment.interactive.Segmenter` and publishes
the copy only when it succeeded, so a rejected prompt changes nothing, readers never see a half-updated
segmenter, and the previous copy is the undo snapshot. Copies (:meth:`Segmenter.copy`) share the scene,
the SAM predictor, the image embeddings, per-view geometry and feature matches; only the per-view working
state and the 3D votes are duplicated.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mvsam.export.overlay import palette
from mvsam.geometry import GeometrySettings, compute_geometry
from mvsam.io.video import FolderFrames
from mvsam.sam.accelerate import DECODER_ENV
from mvsam.sam.predictor import SamPredictor
from mvsam.scene import Scene
from mvsam.segment.interactive import Segmenter, SegmenterConfig
from mvsam.segment.track import Tracker, TrackPrompt
from mvsam.server.state import PromptSpec, SavedObject, SavedState, check_name, load_state, save_state

log = logging.getLogger(__name__)

STAGES = ("loading", "geometry", "model", "embeddings", "indexing", "restoring")
MAX_UNDO = 20  # snapshots kept per object; older steps are undone by replaying the prompts
THUMB_WIDTH = 320  # px
SCENE_POINTS = 60_000  # points of the dimmed scene cloud in the 3D panel
# the exported decoder in bfloat16, unless $MVSAM_DECODER names another: a correction click re-decodes
# many views, and bf16 keeps the masks (README "Web app")
WEB_DECODER = "openvino-bf16"


class NotReady(RuntimeError):
    """The scene is still being prepared (HTTP 409)."""


class Closed(RuntimeError):
    """The workspace was closed while preparing (the server stopped)."""


class UnknownObject(KeyError):
    """No object with that id (HTTP 404)."""


@dataclass
class Progress:
    """Where preparation stands: the current stage of :data:`STAGES` and its fraction done."""

    stage: str = "loading"
    progress: float = 0.0
    ready: bool = False
    error: str | None = None
    stages_done: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Revision:
    """One state of an object: the prompt steps so far and what holds their result.

    Multi-view: the segmenter. Video: ``frames``, np.packbits of the HxW bool mask per frame index (the
    prompted frame only, or every frame once ``tracked``).
    """

    steps: tuple[tuple[PromptSpec, ...], ...]
    segmenter: Segmenter | None = None  # None while there are no prompts (and always for a video)
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    tracked: bool = False

    @property
    def empty(self) -> bool:
        return self.segmenter is None and not self.frames


@dataclass
class LiveObject:
    id: int
    name: str
    color: tuple[int, int, int]
    current: Revision
    undo: list[Revision] = field(default_factory=list)
    redo: list[Revision] = field(default_factory=list)
    version: int = 0  # bumped on every change; the page adds it to mask URLs


@dataclass
class Update:
    seconds: float
    views_changed: list[int]


def object_color(object_id: int) -> tuple[int, int, int]:
    """The colour of an object id (the project's palette, in id order)."""
    return tuple(int(c) for c in palette(object_id + 1)[object_id])


class Workspace:
    """A scene being segmented interactively; thread-safe, one change at a time.

    ``prepare()`` (run in a background thread by the app) loads the scene, its geometry and embeddings
    while :attr:`progress` reports each stage; the views are listed as soon as the scene is loaded.
    """

    def __init__(
        self,
        scene_path: str | Path,
        out_dir: str | Path | None = None,
        *,
        scene_options: dict | None = None,
        geometry: GeometrySettings | None = None,
        model: str = "mobile_sam",
        checkpoint: str | Path | None = None,
        predictor: SamPredictor | None = None,
        config: SegmenterConfig | None = None,
        video: bool | None = None,
    ) -> None:
        self.scene_path = Path(scene_path)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.scene_options = scene_options or {}
        self.geometry_settings = geometry
        self.model = model
        self.checkpoint = checkpoint
        self.predictor = predictor
        self.config = config
        self.video = video  # None: decided by the scene (a video file is tracked, not reconstructed)
        self.progress = Progress()
        self.task: Progress | None = None  # a long change in progress (tracking), for the status
        self.tracker: Tracker | None = None
        self.frames: FolderFrames | None = None
        self.auto = None  # the last "Everything" result (mvsam.segment.auto.AutoResult), when run
        self.scene: Scene | None = None
        self.template: Segmenter | None = None
        self.objects: dict[int, LiveObject] = {}
        self.next_id = 1
        self.notes: list[str] = []
        self.lock = threading.Lock()  # the inference lock: changes queue here, never interleave
        self._closed = threading.Event()
        self._thumbs: dict[int, bytes] = {}
        self._scene_points: tuple[np.ndarray, np.ndarray] | None = None

    # --- preparation ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop preparing at the next stage or view (the server is shutting down)."""
        self._closed.set()

    def _stage(self, stage: str, progress: float = 0.0) -> None:
        if self._closed.is_set():
            raise Closed("the workspace was closed")
        if stage != self.progress.stage:
            self.progress.stages_done.append(self.progress.stage)
        self.progress.stage, self.progress.progress = stage, progress

    def prepare(self) -> None:
        """Load everything; on failure the error is kept in :attr:`progress` (and logged)."""
        try:
            self._prepare()
        except Closed:
            log.info("preparation stopped: the workspace was closed")
        except Exception as error:  # noqa: BLE001 - shown to the user on the page and in /api/status
            log.exception("preparing the scene failed")
            self.progress.error = f"{type(error).__name__}: {error}"

    def _prepare(self) -> None:
        scene = Scene.load(self.scene_path, **self.scene_options)
        if self.video is None:
            self.video = scene.source_format == "video"
        self.scene = scene
        if self.video:
            return self._prepare_video()
        self._stage("geometry")
        compute_geometry(scene, self.geometry_settings, progress=False)
        self._load_predictor()
        self._stage("embeddings")
        if self.predictor.cache is not None:  # embed (or find cached) once here to report progress
            for index, view in enumerate(scene.views):
                self._stage("embeddings", index / len(scene.views))
                self.predictor.encode(view.load_image())
        self._stage("indexing")
        template = Segmenter(scene, self.predictor, self.config, progress=False)
        template.prepare()
        self.template = template
        self._finish()

    def _prepare_video(self) -> None:
        """Frames are tracked, not reconstructed: no geometry, the tracker encodes what it needs."""
        scene = self.scene
        sizes = {(v.height, v.width) for v in scene.views}
        if len(sizes) != 1:
            raise ValueError(
                f"{scene.root}: the frames of a video must share one size, found {sorted(sizes)}"
            )
        self.frames = FolderFrames([v.image_path for v in scene.views], sizes.pop())
        self._load_predictor()
        self.tracker = Tracker(self.predictor)
        self._finish()

    def _load_predictor(self) -> None:
        self._stage("model")
        if self.predictor is None:
            from mvsam.sam import load_predictor

            decoder = "auto" if os.environ.get(DECODER_ENV) else WEB_DECODER
            self.predictor = load_predictor(
                self.model, self.checkpoint, cache_dir=self.scene.cache_dir / "embeddings", decoder=decoder
            )

    def _finish(self) -> None:
        """Objects saved by an earlier session come back, then the page may be used."""
        self._stage("restoring")
        self._restore()
        self._stage("ready", 1.0)
        self.progress.ready = True

    def _restore(self) -> None:
        path = self.state_path
        saved = None if path is None else load_state(path, [v.name for v in self.scene.views])
        if saved is None:
            return
        self.next_id = saved.next_id
        for number, obj in enumerate(saved.objects):
            live = LiveObject(obj.id, obj.name, obj.color, Revision(()))
            try:
                for step in obj.steps:
                    live.current = self._apply(live.current, list(step))
                if obj.tracked and self.video:
                    live.current = self._track(live.current)
            except ValueError as error:
                self.notes.append(
                    f"object {obj.id}: a saved prompt no longer applies ({error}); kept the rest"
                )
            self.objects[obj.id] = live
            self._stage("restoring", (number + 1) / len(saved.objects))

    @property
    def state_path(self) -> Path | None:
        """``<out>/state.json`` (default out: ``<scene cache>/serve``); None before the scene is loaded."""
        if self.out_dir is not None:
            return self.out_dir / "state.json"
        return None if self.scene is None else Path(self.scene.cache_dir) / "serve" / "state.json"

    def _save(self) -> None:
        if self.state_path is None:
            return
        objects = [
            SavedObject(
                obj.id, obj.name, obj.color, [list(step) for step in obj.current.steps], obj.current.tracked
            )
            for obj in self.objects.values()
        ]
        names = [view.name for view in self.scene.views]
        save_state(self.state_path, SavedState(str(self.scene.root), names, self.next_id, objects))

    # --- reading --------------------------------------------------------------------------------

    def require_scene(self) -> Scene:
        if self.scene is None:
            raise NotReady(f"the scene is still loading ({self.progress.stage})")
        return self.scene

    def require_ready(self) -> None:
        if self.progress.error:
            raise NotReady(f"preparing the scene failed: {self.progress.error}")
        if not self.progress.ready:
            raise NotReady(f"not ready yet: {self.progress.stage} {self.progress.progress:.0%}")

    def view_index(self, index: int) -> int:
        """``index`` if the view exists, else IndexError (HTTP 404)."""
        scene = self.require_scene()
        if not 0 <= index < len(scene.views):
            raise IndexError(f"view {index} does not exist (0..{len(scene.views) - 1})")
        return index

    def get(self, object_id: int) -> LiveObject:
        self.require_ready()
        obj = self.objects.get(object_id)
        if obj is None:
            raise UnknownObject(f"no object with id {object_id}")
        return obj

    def work_mask(self, obj: LiveObject, view: int) -> np.ndarray:
        """h x w bool mask at the segmenter's working raster (for thumbnails and change detection)."""
        return self._work_mask(obj.current, view)

    def working_size(self, view: int) -> tuple[int, int]:
        """(w, h) of the raster of thumbnail overlays: the segmenter's, or 320 px wide for a video."""
        if self.video:
            scene_view = self.scene.views[view]
            return THUMB_WIDTH, max(1, round(scene_view.height * THUMB_WIDTH / scene_view.width))
        return self.template.working_size(view)

    def _frame_mask(self, revision: Revision, view: int) -> np.ndarray:
        scene_view = self.scene.views[view]
        packed = revision.frames.get(view)
        if packed is None:
            return np.zeros((scene_view.height, scene_view.width), dtype=bool)
        count = scene_view.height * scene_view.width
        return np.unpackbits(packed, count=count).astype(bool).reshape(scene_view.height, scene_view.width)

    def _work_mask(self, revision: Revision, view: int) -> np.ndarray:
        if self.video:
            mask = self._frame_mask(revision, view).astype(np.uint8)
            return cv2.resize(mask, self.working_size(view), interpolation=cv2.INTER_NEAREST) > 0
        segmenter = revision.segmenter
        if segmenter is None:
            width, height = self.template.working_size(view)
            return np.zeros((height, width), dtype=bool)
        return segmenter.work_mask(view)

    def full_masks(self, obj: LiveObject, views: list[int]) -> list[np.ndarray]:
        """HxW bool masks at the images' sizes, computed on a throwaway copy so snapshots stay small."""
        if self.video:
            return [self._frame_mask(obj.current, i) for i in views]
        segmenter = obj.current.segmenter
        if segmenter is None:
            return [np.zeros((self.scene.views[i].height, self.scene.views[i].width), bool) for i in views]
        segmenter = segmenter.copy()
        return [segmenter.mask(i) for i in views]

    def object_points(self, obj: LiveObject) -> tuple[np.ndarray, np.ndarray]:
        """(Nx3 float64, Nx3 uint8) of the object's voxels (empty before its first prompt)."""
        if obj.current.segmenter is None:
            return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
        return obj.current.segmenter.object_points()

    def scene_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Up to :data:`SCENE_POINTS` coloured points of the scene, from each view's depth (or SfM points)."""
        self.require_ready()
        if self.video:
            return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
        if self._scene_points is None:
            scene = self.scene
            posed = [v for v in scene.views if v.camera is not None and v.has_depth]
            if not posed and scene.sparse is not None:
                self._scene_points = (scene.sparse.xyz, scene.sparse.rgb)
                return self._scene_points
            per_view = SCENE_POINTS // max(len(posed), 1)
            rng = np.random.default_rng(0)
            xyz, rgb = [], []
            for view in posed:
                depth = view.depth
                rows, cols = np.nonzero(depth > 0)
                if len(rows) == 0:
                    continue
                pick = rng.choice(len(rows), min(per_view, len(rows)), replace=False)
                rows, cols = rows[pick], cols[pick]
                xy = np.stack([cols, rows], axis=1).astype(np.float64)
                xyz.append(view.camera.unproject(xy, depth[rows, cols]))
                rgb.append(view.load_image()[rows, cols])
            if xyz:
                self._scene_points = (np.concatenate(xyz), np.concatenate(rgb))
            else:
                self._scene_points = (np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
        return self._scene_points

    def thumbnail(self, view: int, width: int = THUMB_WIDTH) -> bytes:
        """JPEG bytes of a view scaled to ``width`` pixels wide (cached)."""
        scene = self.require_scene()
        if view not in self._thumbs:
            image = scene.views[view].load_image()
            height = max(1, round(image.shape[0] * width / image.shape[1]))
            small = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(
                ".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
            )
            self._thumbs[view] = data.tobytes()
        return self._thumbs[view]

    def overlay(self, view: int, full: bool) -> np.ndarray:
        """HxWx4 uint8 RGBA layer of every object's mask on a view: translucent fill, opaque outline.

        ``full``: at the image size; otherwise at the working raster (thumbnails).
        """
        self.require_ready()
        scene_view = self.scene.views[view]
        if full:
            height, width = scene_view.height, scene_view.width
        else:
            width, height = self.working_size(view)
        layer = np.zeros((height, width, 4), dtype=np.uint8)
        thickness = max(1, round(max(width, height) / 400))
        if self.auto is not None:
            self._draw_ids(layer, view, thickness)
        for obj in list(self.objects.values()):
            if obj.current.empty:
                continue
            mask = self.full_masks(obj, [view])[0] if full else self.work_mask(obj, view)
            if not mask.any():
                continue
            layer[mask] = (*obj.color, 110)
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(layer, contours, -1, (*obj.color, 255), thickness)
        return layer

    def _draw_ids(self, layer: np.ndarray, view: int, thickness: int) -> None:
        """Automatic mode's objects on a view, one palette colour per consistent id, under the objects."""
        ids = np.asarray(self.auto.id_map(view))
        height, width = layer.shape[:2]
        if ids.shape != (height, width):
            ids = cv2.resize(ids.astype(np.int32), (width, height), interpolation=cv2.INTER_NEAREST)
        present = [int(i) for i in np.unique(ids) if i > 0]
        colors = palette(max(present, default=0) + 1, seed=1)
        for object_id in present:
            mask = ids == object_id
            layer[mask] = (*colors[object_id], 90)
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(layer, contours, -1, (*colors[object_id], 200), thickness)

    def run_auto(self) -> tuple[int, float]:
        """Automatic mode on the whole scene ("Everything"): (objects found, seconds)."""
        try:
            from mvsam.segment.auto import AutoSegmenter
        except ImportError:
            raise ValueError("automatic mode (mvsam.segment.auto) is not installed in this version") from None
        with self.lock:
            self.require_ready()
            if self.video:
                raise ValueError("automatic mode is for multi-view scenes, not videos")
            start = time.perf_counter()
            self.auto = AutoSegmenter(self.scene).run()
            return len(self.auto.objects), time.perf_counter() - start

    # --- changes (under the inference lock) -----------------------------------------------------

    def _apply(self, revision: Revision, specs: list[PromptSpec]) -> Revision:
        """The revision after one more step; ValueError (nothing changed) when the prompts are rejected."""
        sizes = [(v.width, v.height) for v in self.scene.views]
        for spec in specs:
            spec.check(sizes)
        if self.video:
            return self._apply_frame(revision, specs)
        segmenter = (revision.segmenter or self.template).copy()
        prompts = [spec.to_prompt() for spec in specs]
        if revision.segmenter is None:
            segmenter.segment(prompts)
        else:
            segmenter.add_prompts(prompts)
        return Revision((*revision.steps, tuple(specs)), segmenter)

    def _track_prompt(self, steps: tuple[tuple[PromptSpec, ...], ...]) -> TrackPrompt:
        """The tracker's prompt from an object's steps: clicks and at most one box, all on one frame."""
        specs = [spec for step in steps for spec in step]
        frames = {spec.view for spec in specs}
        if len(frames) != 1:
            raise ValueError(
                f"in a video an object's prompts go on one frame (got frames {sorted(frames)}); clear the "
                "object or add another object to start on another frame"
            )
        boxes = [spec.box for spec in specs if spec.box is not None]
        if len(boxes) > 1:
            raise ValueError("one box per object in a video; undo the first box or add clicks instead")
        clicks = [spec for spec in specs if spec.box is None]
        points = np.array([[c.x, c.y] for c in clicks], dtype=np.float64).reshape(-1, 2)
        labels = np.array([c.label for c in clicks], dtype=np.int64)
        return TrackPrompt(
            frame=frames.pop(),
            points=points if len(clicks) else None,
            labels=labels if len(clicks) else None,
            box=np.array(boxes[0], dtype=np.float64) if boxes else None,
        )

    def _apply_frame(self, revision: Revision, specs: list[PromptSpec]) -> Revision:
        """A video object's mask on its prompted frame (the tracker's first answer, nothing tracked yet)."""
        steps = (*revision.steps, tuple(specs))
        prompt = self._track_prompt(steps)
        if prompt.labels is not None and not np.any(prompt.labels == 1) and prompt.box is None:
            raise ValueError("the prompts only say what is not the object; add a positive click or a box")
        single = FolderFrames([self.frames.paths[prompt.frame]], self.frames.size)
        first = next(iter(self.tracker.track(single, dataclasses.replace(prompt, frame=0))))
        return Revision(steps, frames={prompt.frame: np.packbits(first.mask)})

    def _track(self, revision: Revision) -> Revision:
        """Every frame's mask, tracked forwards and backwards from the prompted frame."""
        if not revision.steps:
            raise ValueError("nothing to track: click the object on a frame first")
        prompt = self._track_prompt(revision.steps)
        frames = {}
        self.task = Progress(stage="tracking")
        try:
            for result in self.tracker.track(self.frames, prompt):
                frames[result.index] = np.packbits(result.mask)
                self.task.progress = len(frames) / len(self.frames)
        finally:
            self.task = None
        return Revision(revision.steps, frames=frames, tracked=True)

    def track(self, object_id: int) -> Update:
        """Track a video object through every frame (progress in :attr:`task`)."""
        with self.lock:
            obj = self.get(object_id)
            if not self.video:
                raise ValueError("tracking is for videos; in a multi-view scene every view follows already")
            return self._change(obj, lambda: self._track(obj.current))

    def _replay(self, steps: tuple[tuple[PromptSpec, ...], ...]) -> Revision:
        revision = Revision(())
        for step in steps:
            revision = self._apply(revision, list(step))
        return revision

    def _change(self, obj: LiveObject, make: Callable[[], Revision]) -> Update:
        """Publish ``make()`` as the object's new revision, remember the old one for undo, save."""
        start = time.perf_counter()
        before = obj.current
        after = make()
        obj.undo.append(before)
        del obj.undo[:-MAX_UNDO]
        obj.redo.clear()
        return self._publish(obj, before, after, start)

    def _publish(self, obj: LiveObject, before: Revision, after: Revision, start: float) -> Update:
        changed = [
            view
            for view in range(len(self.scene.views))
            if not np.array_equal(self._work_mask(before, view), self._work_mask(after, view))
        ]
        obj.current = after
        obj.version += 1
        self._save()
        return Update(time.perf_counter() - start, changed)

    def add_prompts(self, object_id: int, specs: list[PromptSpec]) -> Update:
        """Add one step of prompts to an object; returns once every view is updated."""
        if not specs:
            raise ValueError("no prompts given")
        with self.lock:
            obj = self.get(object_id)
            return self._change(obj, lambda: self._apply(obj.current, specs))

    def clear(self, object_id: int) -> Update:
        with self.lock:
            obj = self.get(object_id)
            return self._change(obj, lambda: Revision(()))

    def undo(self, object_id: int) -> Update:
        with self.lock:
            obj = self.get(object_id)
            start = time.perf_counter()
            if obj.undo:
                previous = obj.undo.pop()
            elif obj.current.steps:  # restored from disk or past the kept snapshots
                previous = self._replay(obj.current.steps[:-1])
            else:
                raise ValueError(f"object {object_id} has nothing to undo")
            obj.redo.append(obj.current)
            return self._publish(obj, obj.current, previous, start)

    def redo(self, object_id: int) -> Update:
        with self.lock:
            obj = self.get(object_id)
            if not obj.redo:
                raise ValueError(f"object {object_id} has nothing to redo")
            start = time.perf_counter()
            following = obj.redo.pop()
            obj.undo.append(obj.current)
            return self._publish(obj, obj.current, following, start)

    def create_object(self, name: str | None = None) -> LiveObject:
        with self.lock:
            self.require_ready()
            object_id = self.next_id
            name = check_name(name) if name is not None else f"object {object_id}"
            obj = LiveObject(object_id, name, object_color(object_id), Revision(()))
            self.objects[object_id] = obj
            self.next_id += 1
            self._save()
            return obj

    def rename(self, object_id: int, name: str) -> None:
        with self.lock:
            obj = self.get(object_id)
            obj.name = check_name(name)
            self._save()

    def delete(self, object_id: int) -> None:
        with self.lock:
            self.get(object_id)
            del self.objects[object_id]
            self._save()
