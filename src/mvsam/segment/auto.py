"""Automatic mode: every object of a scene, one id per object in every view, and its 3D points.

Global, not greedy (MastSAM's job, solved as one association problem):

1. Keyframes that cover the scene (farthest-point sampling of camera centres) get SAM's automatic masks.
2. Every keyframe mask is lifted to 3D through its view's depth. Two masks of different keyframes are linked
   when each covers most of the other where both views see the same surface (mutual containment over
   co-visible pixels, a graph over all keyframe masks at once).
3. The graph is clustered as a whole: links are merged strongest first, and a cluster never takes two masks of
   one view, so an object split into parts in one view and whole in another does not chain parts together.
   A cluster whose 3D voxels lie inside a larger cluster's is a part of it and, at the default granularity
   ("whole"), is dropped when the whole is at least as confident.
4. Each object's member masks vote in its own voxel table; the votes are projected into a view, and the
   footprint gives prompts (box, interior points, nearby negatives) decoded in batched SAM passes; the
   candidate agreeing best with the footprint is kept. Every object is first decoded on the judging views
   (the keyframes and views spread between them), where duplicates, groups and parts are dropped; only the
   survivors are decoded in the other views.
5. Overlaps are resolved per pixel: among the objects whose mask holds a pixel, the one whose 3D footprint
   holds it wins, then the smaller object (one lying on a larger one stays on top), then the higher logit.
6. The least covered view gets automatic masks too; its masks over unlabelled pixels become new objects,
   decoded in every view (``fill_rounds`` times).

All association and decoding runs on SAM's low-res working raster (256 x 192 for a 4:3 image); final id maps
are resolved at full resolution from the upscaled logits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.errors import InputError
from mvsam.evaluate.metrics import multiview_consistency
from mvsam.lift.project import resize_camera, unproject_pixels, visible_mask
from mvsam.lift.votes import ViewVoxels, VoxelVotes
from mvsam.lift.voxels import VoxelGrid, default_voxel_size, unique_keys
from mvsam.sam.automatic import AutomaticMaskGenerator
from mvsam.sam.masks import upscale_matrices
from mvsam.sam.predictor import ImageEmbedding, SamPredictor
from mvsam.scene import Camera, Scene
from mvsam.segment.candidates import CandidateWeights, choose_candidate
from mvsam.segment.masks import keep_large_components, pairwise_overlap, resize_mask, sample_at_centres
from mvsam.segment.prompting import PromptSettings, footprint_prompt, working_size

log = logging.getLogger(__name__)

Granularity = Literal["whole", "parts"]
RIM = np.ones((3, 3), np.uint8)  # working pixels within one of another id are an object's rim


@dataclass
class AutoConfig:
    """Knobs of :class:`AutoSegmenter`. The part and overlap rules were developed on the demo scene;
    the other defaults are SAM's or the interactive mode's, not tuned (see README, automatic mode)."""

    keyframes: int = 0  # views given automatic masks; 0 = about sqrt(views), at least 3
    # automatic-mask point grid on keyframes; 8 (was 16): tuned on DTU's odd views, not the held-out view 0:
    # mIoU 0.908 vs 0.901 (reference view 1) and 0.51 vs 0.05 (view 3) in half the time (README)
    points_per_side: int = 8
    pred_iou_thresh: float = 0.86
    stability_score_thresh: float = 0.92
    min_mask_share: float = 0.001  # keyframe masks smaller than this share of the view are dropped
    link_threshold: float = 0.6  # mutual containment (over co-visible pixels) that links two masks
    min_shared_pixels: int = 20  # co-visible working pixels below which two masks are not compared
    granularity: Granularity = "whole"  # "whole": drop parts of a larger object; "parts": keep both
    part_containment: float = 0.8  # share of an object's voxels inside another that makes it a part
    part_share: float = (
        0.2  # ... if it is also at least this share of the other's size (else: an object on it)
    )
    part_size_ratio: float = 0.9  # decoded masks: a part is at most this share of its whole's area
    duplicate_iou: float = 0.8  # decoded masks: two objects each this much inside the other are one
    min_agreement: float = 0.3  # decoded masks agreeing less with the footprint are dropped
    footprint_bonus: float = 4.0  # overlaps: priority added where an object's 3D footprint holds a pixel
    smaller_on_top: float = 1.0  # overlaps: priority of the smallest object over the largest (logit: <= 1)
    min_object_pixels: int = 12  # working pixels below which an object is not in a view
    judge_views: int = 0  # views where every candidate object is decoded and judged; 0 = 2 x keyframes
    fill_rounds: int = 1  # extra keyframes given to the least covered views
    fill_coverage: float = 0.9  # views covered at least this much need no fill round
    video_keyframe_stride: int = 10  # video mode: automatic masks on every n-th frame
    video_max_objects: int = 8  # video mode: objects present at once (the largest keyframe masks)
    video_points_per_side: int = 8  # video mode: automatic-mask point grid on keyframes
    voxel_factor: float = 1.5  # voxel side = this x the median footprint of one working pixel
    depth_tolerance: float = 0.02  # relative depth tolerance of the visibility test
    prompts: PromptSettings = field(default_factory=PromptSettings)
    weights: CandidateWeights = field(default_factory=CandidateWeights)

    def validate(self) -> None:
        if self.video_keyframe_stride < 1:
            raise InputError(f"video_keyframe_stride must be >= 1, got {self.video_keyframe_stride}")
        if self.keyframes < 0 or self.points_per_side < 1 or self.fill_rounds < 0 or self.judge_views < 0:
            raise InputError("keyframes, judge_views and fill_rounds must be >= 0 and points_per_side >= 1")
        if self.video_max_objects < 1 or self.video_points_per_side < 1:
            raise InputError("video_max_objects and video_points_per_side must be >= 1")
        if self.granularity not in ("whole", "parts"):
            raise InputError(f"granularity must be 'whole' or 'parts', got {self.granularity!r}")
        for name in (
            "link_threshold",
            "part_containment",
            "part_share",
            "min_agreement",
            "fill_coverage",
            "min_mask_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class AutoObject:
    """One object; ``id`` is the user-facing id written into the id maps (1, 2, ...)."""

    id: int
    views: list[str]  # names of the views where it is visible
    area: dict[str, int]  # full-resolution pixels per view where visible
    score: float  # mean SAM predicted IoU of its decoded masks
    centroid: list[float] | None  # world (x, y, z) of its 3D points; None without geometry
    extent: list[float] | None  # world size along x, y, z (2nd to 98th percentile)


@dataclass
class AutoSeconds:
    encode: float = 0.0
    locate: float = 0.0
    keyframe_masks: float = 0.0
    associate: float = 0.0
    decode: float = 0.0
    resolve: float = 0.0
    fill: float = 0.0
    points: float = 0.0
    total: float = 0.0


@dataclass
class AutoResult:
    """Consistent ids in every view. ``id_map(view)`` is HxW int32 (0 = no object) at the image size."""

    scene: Scene
    objects: list[AutoObject]
    keyframes: list[int]
    coverage: float  # share of all views' pixels given an id
    seconds: AutoSeconds
    notes: list[str]
    _maps: list[np.ndarray]  # per view HxW uint16 id maps
    _points: dict[int, tuple[np.ndarray, np.ndarray]]  # id -> (Nx3 world points, Nx3 uint8 colours)

    def id_map(self, view: str | int) -> np.ndarray:
        return self._maps[self.scene.view_index(view)].astype(np.int32)

    def object_points(self, object_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(Nx3 float64 world points, Nx3 uint8 colours) of one object, one point per voxel."""
        if object_id not in self._points:
            known = ", ".join(str(o.id) for o in self.objects[:10])
            raise InputError(
                f"no object with id {object_id}; ids are {known}{', ...' if len(self.objects) > 10 else ''}"
            )
        return self._points[object_id]


@dataclass
class _View:
    """Working state of one view on its working raster (w x h)."""

    index: int
    size: tuple[int, int]  # (w, h)
    full_size: tuple[int, int]  # (W, H)
    embedding: ImageEmbedding
    small_rgb: np.ndarray  # h x w x 3 uint8
    camera: Camera | None = None  # at the working raster
    depth: np.ndarray | None = None  # h x w float32, 0 = unknown
    located: ViewVoxels | None = None
    points: np.ndarray | None = None  # Nx3 world points of the known-depth pixels, row-major
    pixels: np.ndarray | None = None  # N flat working-pixel index of each point


@dataclass
class _Mask:
    view: int
    mask: np.ndarray  # h x w bool, working raster
    score: float


@dataclass
class _Object:
    members: list[_Mask]
    votes: VoxelVotes
    score: float
    decoded: dict[int, tuple[np.ndarray, float]] = field(
        default_factory=dict
    )  # view -> (256^2 logits, score)
    footprints: dict[int, np.ndarray] = field(default_factory=dict)  # view -> h x w bool


def choose_keyframes(centers: np.ndarray, count: int, start: list[int] | None = None) -> list[int]:
    """``count`` rows of Nx3 camera centres spread by farthest-point sampling, from the rows ``start``
    (default: the first view) which are kept; sorted."""
    chosen = list(start or [0])
    distance = np.min([np.linalg.norm(centers - centers[k], axis=1) for k in chosen], axis=0)
    while len(chosen) < min(count, len(centers)):
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(centers - centers[nxt], axis=1))
    return sorted(chosen)


def whole_masks(
    masks: list[tuple[np.ndarray, float]], containment: float, share: float
) -> list[tuple[np.ndarray, float]]:
    """(mask, score) pairs of one view without the parts: a mask with at least ``containment`` of its
    pixels inside a larger mask that scores at least as well (within 0.02) and is at most 1 / ``share``
    times its size is dropped (a small mask inside a big one is an object on it, not a part)."""
    flat = np.stack([m.reshape(-1) for m, _ in masks]) if masks else np.zeros((0, 0), bool)
    areas = flat.sum(axis=1)
    shared = flat.astype(np.float32) @ flat.T.astype(np.float32)
    kept = []
    for k, (mask, score) in enumerate(masks):
        inside = shared[k] / max(areas[k], 1)
        holders = (inside >= containment) & (areas > areas[k]) & (share * areas <= areas[k])
        holders &= np.array([s >= score - 0.02 for _, s in masks])
        if not holders.any():
            kept.append((mask, score))
    return kept


def automatic_setup(
    scene: Scene,
    predictor: SamPredictor | None,
    config: AutoConfig | None,
    decoder: str = "torch",
    working_raster: bool = False,
) -> tuple[AutoConfig, SamPredictor, AutomaticMaskGenerator]:
    """The validated config, the predictor (MobileSAM caching in the scene's cache, with the ``decoder``
    backend, when None) and the keyframe mask generator shared by :class:`AutoSegmenter` and the video
    mode. The generator decodes in passes of the predictor's best chunk size (torch 4, exported 1) and
    with ``working_raster`` returns masks on SAM's working raster (see ``AutomaticMaskGenerator``)."""
    config = config or AutoConfig()
    config.validate()
    if predictor is None:
        from mvsam.sam import load_predictor

        predictor = load_predictor("mobile_sam", cache_dir=scene.cache_dir / "embeddings", decoder=decoder)
    generator = AutomaticMaskGenerator(
        predictor,
        points_per_side=config.points_per_side,
        pred_iou_thresh=config.pred_iou_thresh,
        stability_score_thresh=config.stability_score_thresh,
        skip_covered=True,
        decode_chunk=predictor.decoder.chunk_size,
        working_raster=working_raster,
    )
    return config, predictor, generator


class AutoSegmenter:
    """Every object in every view of a scene with geometry; see the module docstring for the method."""

    def __init__(
        self,
        scene: Scene,
        predictor: SamPredictor | None = None,
        config: AutoConfig | None = None,
        progress: bool = True,
    ) -> None:
        posed = [v for v in scene.views if v.camera is not None and v.has_depth]
        if len(posed) < 2:
            raise InputError(
                f"{scene.root}: automatic mode needs cameras and depth for at least two views "
                f"({len(posed)} have both); run scene.geometry() first, or use a video without geometry "
                "through mvsam.segment.auto_video"
            )
        self.scene = scene
        self.progress = progress
        self.config, self.predictor, self.generator = automatic_setup(
            scene, predictor, config, decoder="auto", working_raster=True
        )
        self.seconds = AutoSeconds()
        self.notes: list[str] = []

    # --- preparation ----------------------------------------------------------------------------

    def _prepare(self) -> list[_View]:
        tick = time.perf_counter()
        views = []
        for index, view in enumerate(
            tqdm(self.scene.views, desc="SAM embeddings", disable=not self.progress)
        ):
            image = view.load_image()
            size = working_size((view.height, view.width))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            views.append(_View(index, size, (view.width, view.height), self.predictor.encode(image), small))
        self.seconds.encode = time.perf_counter() - tick
        tick = time.perf_counter()
        for state in views:
            view = self.scene.views[state.index]
            if view.camera is None or view.depth is None or not np.any(view.depth > 0):
                self.notes.append(f"{view.name}: no camera or depth; left unlabelled")
                continue
            state.camera = resize_camera(view.camera, *state.size)
            depth = sample_at_centres(view.depth, state.size).astype(np.float32)
            state.depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)
        posed = [s for s in views if s.camera is not None]
        size = default_voxel_size(
            [s.camera for s in posed], [s.depth for s in posed], self.config.voxel_factor
        )
        origin = np.mean([s.camera.center for s in posed], axis=0)
        self.grid = VoxelGrid(size, origin)
        locator = VoxelVotes(self.grid)
        for state in posed:
            state.located = locator.locate(state.camera, state.depth)
            state.pixels = np.flatnonzero(state.depth > 0)
            state.points = unproject_pixels(state.camera, state.depth, state.depth > 0)
        self.seconds.locate = time.perf_counter() - tick
        return views

    def _keyframe_masks(self, state: _View) -> list[_Mask]:
        """Automatic masks of one view on its working raster, largest first."""
        found = self.generator.generate(self.scene.views[state.index].load_image())
        min_pixels = max(
            self.config.min_object_pixels, self.config.min_mask_share * state.size[0] * state.size[1]
        )
        masks = []
        for item in found:
            mask = resize_mask(item.segmentation, state.size)
            if np.count_nonzero(mask) >= min_pixels:
                masks.append((mask, float(item.predicted_iou)))
        masks = [_Mask(state.index, mask, score) for mask, score in masks]
        return sorted(masks, key=lambda m: -np.count_nonzero(m.mask))

    # --- association ----------------------------------------------------------------------------

    def _containment(self, source: _View, target: _View, masks_s: list[_Mask], masks_t: list[_Mask]):
        """(NxM share of each source mask's co-visible pixels inside each target mask, N co-visible
        pixel counts)."""
        seen = visible_mask(target.camera, target.depth, source.points, rel_tol=self.config.depth_tolerance)
        keep = seen.visible
        flat_s = np.stack([m.mask.reshape(-1) for m in masks_s])[:, source.pixels[keep]]
        flat_t = np.stack([m.mask.reshape(-1) for m in masks_t])[:, seen.pixel[keep]]
        shared = flat_s.astype(np.float32) @ flat_t.T.astype(np.float32)
        counts = flat_s.sum(axis=1)
        return shared / np.maximum(counts, 1)[:, None], counts

    def _associate(self, views: list[_View], masks: list[_Mask]) -> list[list[int]]:
        """Clusters (lists of indices into ``masks``) of one object each, from the global link graph."""
        cfg = self.config
        by_view: dict[int, list[int]] = {}
        for k, m in enumerate(masks):
            by_view.setdefault(m.view, []).append(k)
        edges = []
        keys = sorted(by_view)
        for a_pos, a in enumerate(keys):
            for b in keys[a_pos + 1 :]:
                ia, ib = by_view[a], by_view[b]
                c_ab, n_a = self._containment(
                    views[a], views[b], [masks[k] for k in ia], [masks[k] for k in ib]
                )
                c_ba, n_b = self._containment(
                    views[b], views[a], [masks[k] for k in ib], [masks[k] for k in ia]
                )
                weight = np.minimum(c_ab, c_ba.T)
                weight[n_a < cfg.min_shared_pixels] = 0
                weight[:, n_b < cfg.min_shared_pixels] = 0
                for r, c in zip(*np.nonzero(weight >= cfg.link_threshold), strict=True):
                    edges.append((float(weight[r, c]), ia[r], ib[c]))
        parent = list(range(len(masks)))
        members_views = [{m.view} for m in masks]

        def root(k: int) -> int:
            while parent[k] != k:
                parent[k] = parent[parent[k]]
                k = parent[k]
            return k

        for _, a, b in sorted(edges, reverse=True):
            ra, rb = root(a), root(b)
            if ra == rb or members_views[ra] & members_views[rb]:
                continue  # one mask per view per object
            parent[rb] = ra
            members_views[ra] |= members_views[rb]
        clusters: dict[int, list[int]] = {}
        for k in range(len(masks)):
            clusters.setdefault(root(k), []).append(k)
        return list(clusters.values())

    def _objects(self, views: list[_View], masks: list[_Mask], clusters: list[list[int]]) -> list[_Object]:
        objects = []
        for cluster in clusters:
            votes = VoxelVotes(self.grid)
            for k in cluster:
                votes.vote(views[masks[k].view].located, masks[k].mask)
            score = float(np.mean([masks[k].score for k in cluster]))
            objects.append(_Object([masks[k] for k in cluster], votes, score))
        return objects

    # --- decoding and resolution ----------------------------------------------------------------

    def _reconcile(self, views: list[_View], objects: list[_Object]) -> list[_Object]:
        """Duplicates, groups and parts, judged on the masks SAM decoded for each object in every view
        (the median over the views where both objects are decoded, so one odd view does not decide):

        - two objects each at least ``duplicate_iou`` inside the other are one: the better supported
          (more keyframes, then score) stays;
        - an object whose mask is covered by two or more objects inside it is a group of them (SAM's
          "whole" level at a point often spans neighbours) and is dropped when one of them is found in
          more keyframes (a whole found as consistently as its pieces is the level kept: MastSAM);
        - at "whole" granularity, an object inside a larger one that is found in at least as many
          keyframes is a part of it (a box's top face) and is dropped.
        """
        cfg = self.config
        n = len(objects)
        if n < 2:
            return objects
        support = np.array([len({m.view for m in o.members}) for o in objects])
        score = np.array([o.score for o in objects])
        inside: list[list[list[float]]] = [[[] for _ in range(n)] for _ in range(n)]  # share of a in b
        ratio: list[list[list[float]]] = [[[] for _ in range(n)] for _ in range(n)]  # area a / area b
        per_view = []
        for state in views:
            present = [k for k, o in enumerate(objects) if state.index in o.decoded]
            if len(present) < 2:
                continue
            width, height = state.size
            flat = np.stack(
                [objects[k].decoded[state.index][0][:height, :width].reshape(-1) > 0 for k in present]
            )
            areas = np.maximum(flat.sum(axis=1), 1)
            shared = pairwise_overlap(flat, flat)
            per_view.append((present, flat))
            for i, a in enumerate(present):
                for j, b in enumerate(present):
                    if i != j and shared[i, j]:
                        inside[a][b].append(shared[i, j] / areas[i])
                        ratio[a][b].append(areas[i] / areas[j])

        def median(values: list[float], present: int) -> float:
            return float(np.median(values + [0.0] * (present - len(values)))) if present else 0.0

        both = np.zeros((n, n), dtype=np.int64)
        for present, _ in per_view:
            both[np.ix_(present, present)] += 1
        contained = np.zeros((n, n))
        smaller = np.zeros((n, n), dtype=bool)
        for a in range(n):
            for b in range(n):
                if a != b and inside[a][b]:
                    contained[a, b] = median(inside[a][b], both[a, b])
                    smaller[a, b] = np.median(ratio[a][b]) <= cfg.part_size_ratio
        alive = np.ones(n, dtype=bool)
        rank = sorted(range(n), key=lambda k: (-support[k], -score[k]))
        for a in rank:  # duplicates: each inside the other
            for b in rank:
                if (
                    alive[a]
                    and alive[b]
                    and a != b
                    and min(contained[a, b], contained[b, a]) >= cfg.duplicate_iou
                ):
                    alive[b] = False
                    objects[a].members += objects[b].members
        for b in range(n):  # groups: covered by several objects inside them
            children = [
                a for a in range(n) if alive[a] and smaller[a, b] and contained[a, b] >= cfg.part_containment
            ]
            if not alive[b] or len(children) < 2 or support[b] >= max(support[children]):
                continue
            covered = []
            for present, flat in per_view:
                if b in present and any(a in present for a in children):
                    rows = [present.index(a) for a in children if a in present]
                    own = flat[present.index(b)]
                    covered.append(np.count_nonzero(own & flat[rows].any(axis=0)) / max(own.sum(), 1))
            if covered and np.median(covered) >= cfg.part_containment:
                alive[b] = False
        if cfg.granularity == "whole":  # parts: inside a larger object that is found as often
            for a in range(n):
                holders = [
                    b
                    for b in range(n)
                    if alive[b]
                    and smaller[a, b]
                    and contained[a, b] >= cfg.part_containment
                    and support[b] >= support[a]
                ]
                if alive[a] and holders:
                    alive[a] = False
        return [o for k, o in enumerate(objects) if alive[k]]

    def _decode(self, views: list[_View], objects: list[_Object]) -> None:
        """Decode every object in every posed view from its footprint, in batched SAM passes."""
        requests, owners = [], []
        for state in views:
            if state.located is None:
                continue
            for obj in objects:
                footprint = obj.votes.footprint(state.located)
                foreground = keep_large_components(footprint > 0.5, self.config.min_object_pixels)
                background = footprint <= 0.5
                prompt = footprint_prompt(foreground, background, state.full_size, self.config.prompts)
                if prompt is None:
                    continue
                # the bonus region without one-pixel voxel speckle, which would pepper other objects
                obj.footprints[state.index] = cv2.morphologyEx(
                    foreground.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
                ).astype(bool)
                requests.append((state.embedding, prompt))
                owners.append((state.index, obj, foreground, ~np.isnan(footprint)))
        predictions = self.predictor.predict_batch(requests, multimask=True, return_masks=False)
        for (index, obj, foreground, known), prediction in zip(owners, predictions, strict=True):
            best, agreement = choose_candidate(
                prediction.low_res_logits, prediction.scores, foreground, known, self.config.weights
            )
            if agreement >= self.config.min_agreement:
                obj.decoded[index] = (prediction.low_res_logits[best], float(prediction.scores[best]))

    def _resolve(self, state: _View, objects: list[_Object], full: bool) -> np.ndarray:
        """Per-pixel owner (index into ``objects`` + 1, 0 = none) at full or working resolution. At full
        resolution each object's logits are upscaled only over the box its positive cells can reach
        (:func:`~mvsam.sam.masks.upscale_matrices`); elsewhere they are negative."""
        width, height = state.full_size if full else state.size
        best = np.full((height, width), -np.inf, dtype=np.float32)
        owner = np.zeros((height, width), dtype=np.uint16)
        sizes = np.array([np.count_nonzero(o.votes.probability() > 0.5) for o in objects])
        smallness = 1.0 - (np.argsort(np.argsort(sizes, kind="stable")) + 1) / (len(objects) + 1)
        if full:
            rows, cols = upscale_matrices(state.embedding.input_size, state.embedding.original_size)
        for k, obj in enumerate(objects):
            if state.index not in obj.decoded:
                continue
            logits = obj.decoded[state.index][0]
            if full:
                positive = logits > 0
                window_y, window_x = _reach(rows, positive.any(axis=1)), _reach(cols, positive.any(axis=0))
                if window_y is None or window_x is None:
                    continue
                (y0, y1), (x0, x1) = window_y, window_x
                logits = (cols[x0:x1] @ (rows[y0:y1] @ logits).T).T
                footprint = obj.footprints[state.index]  # nearest working pixel, as cv2.INTER_NEAREST
                footprint = footprint[
                    np.ix_(
                        _nearest(y0, y1, height, footprint.shape[0]),
                        _nearest(x0, x1, width, footprint.shape[1]),
                    )
                ]
            else:
                y0, y1, x0, x1 = 0, height, 0, width
                logits = logits[:height, :width]
                footprint = obj.footprints[state.index]
            priority = np.minimum(logits, 10.0)
            priority /= 10.0  # confidence in (0, 1] where the mask holds the pixel
            priority += self.config.smaller_on_top * smallness[k]
            priority += self.config.footprint_bonus * footprint
            region_best, region_owner = best[y0:y1, x0:x1], owner[y0:y1, x0:x1]
            wins = (logits > 0) & (priority > region_best)
            np.copyto(region_best, priority, where=wins)
            region_owner[wins] = k + 1
        return owner

    def _fill(self, views: list[_View], objects: list[_Object], keyframes: list[int]) -> list[_Object]:
        """New objects from automatic masks of the least covered view, over its unlabelled pixels."""
        coverage = {}
        for state in views:
            if state.located is not None and state.index not in keyframes:
                owner = self._resolve(state, objects, full=False)
                coverage[state.index] = np.count_nonzero(owner) / owner.size
        if not coverage or min(coverage.values()) >= self.config.fill_coverage:
            return []
        index = min(coverage, key=coverage.get)
        keyframes.append(index)
        state = views[index]
        labelled = self._resolve(state, objects, full=False) > 0
        new = []
        for item in self._keyframe_masks(state):
            free = np.count_nonzero(item.mask & ~labelled) / np.count_nonzero(item.mask)
            if (
                free >= 0.7
                and np.count_nonzero(item.mask & state.depth.astype(bool)) >= self.config.min_object_pixels
            ):
                mask = item.mask & ~labelled
                labelled |= mask
                votes = VoxelVotes(self.grid)
                votes.vote(state.located, mask)
                new.append(_Object([_Mask(index, mask, item.score)], votes, item.score))
        log.info("auto: fill round on %s added %d objects", self.scene.views[index].name, len(new))
        return new

    # --- outputs ---------------------------------------------------------------------------------

    def _instance_points(
        self, views: list[_View], maps: list[np.ndarray]
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """id -> (Nx3 world points, Nx3 uint8 colours), one point per voxel. A voxel belongs to the id most
        of the views that see it give it (0 = none included), and pixels on the rim between two ids give
        none (their depth may belong to either side), so the floor does not enter an object's cloud."""
        keys, labels, xyz, rgb = [], [], [], []
        for state, id_map in zip(views, maps, strict=True):
            if state.located is None:
                continue
            keys.append(self.grid.keys(state.points))
            small = sample_at_centres(id_map, state.size)
            rim = cv2.dilate(small, RIM) != cv2.erode(small, RIM)  # pixels next to another id
            labels.append(np.where(rim, 0, small).reshape(-1)[state.pixels].astype(np.int64))
            xyz.append(state.points)
            rgb.append(state.small_rgb.reshape(-1, 3)[state.pixels])
        if not keys:
            return {}
        labels = np.concatenate(labels)
        _, voxel = unique_keys(np.concatenate(keys))
        pairs, pair_of, count = np.unique(
            voxel * (labels.max() + 1) + labels, return_inverse=True, return_counts=True
        )
        order = np.lexsort((-count, pairs // (labels.max() + 1)))  # by voxel, most frequent label first
        first = np.r_[True, np.diff(pairs[order] // (labels.max() + 1)) > 0]
        winner = np.zeros(len(pairs), dtype=bool)
        winner[order[first]] = True
        chosen = winner[pair_of.reshape(-1)] & (labels > 0)
        xyz, rgb = np.concatenate(xyz)[chosen], np.concatenate(rgb)[chosen].astype(np.float64)
        voxel, labels = voxel[chosen], labels[chosen]
        points = {}
        for label in np.unique(labels):
            mine = labels == label
            _, inverse = unique_keys(voxel[mine])
            n = np.bincount(inverse)
            mean_xyz = np.stack([np.bincount(inverse, xyz[mine, k]) / n for k in range(3)], axis=1)
            mean_rgb = np.stack([np.bincount(inverse, rgb[mine, k]) / n for k in range(3)], axis=1)
            points[int(label)] = (mean_xyz, np.clip(np.rint(mean_rgb), 0, 255).astype(np.uint8))
        return points

    def run(self) -> AutoResult:
        """Segment everything; see the module docstring."""
        start = time.perf_counter()
        cfg = self.config
        views = self._prepare()
        posed = [s.index for s in views if s.located is not None]
        count = cfg.keyframes or max(3, round(np.sqrt(len(posed))))
        centers = np.array([self.scene.views[i].camera.center for i in posed])
        keyframes = [posed[k] for k in choose_keyframes(centers, count)]

        tick = time.perf_counter()
        masks = []
        for index in tqdm(keyframes, desc="keyframe masks", disable=not self.progress):
            masks += self._keyframe_masks(views[index])
        self.seconds.keyframe_masks = time.perf_counter() - tick
        if not masks:
            raise InputError(
                f"{self.scene.root}: SAM found no object in the keyframes "
                f"({', '.join(self.scene.views[k].name for k in keyframes)}); lower pred_iou_thresh or "
                "stability_score_thresh, or raise points_per_side"
            )
        tick = time.perf_counter()
        clusters = self._associate(views, masks)
        objects = self._objects(views, masks, clusters)
        self.seconds.associate = time.perf_counter() - tick
        log.info("auto: %d keyframe masks, %d clusters", len(masks), len(clusters))

        tick = time.perf_counter()
        objects = self._decode_judged(views, objects, objects, keyframes)
        self.seconds.decode = time.perf_counter() - tick
        for _ in range(cfg.fill_rounds):
            tick = time.perf_counter()
            new = self._fill(views, objects, keyframes)
            self.seconds.fill += time.perf_counter() - tick
            if not new:
                break
            tick = time.perf_counter()
            objects = self._decode_judged(views, objects + new, new, keyframes)
            self.seconds.decode += time.perf_counter() - tick
        return self._finish(views, objects, sorted(keyframes), start)

    def _decode_judged(
        self, views: list[_View], objects: list[_Object], new: list[_Object], keyframes: list[int]
    ) -> list[_Object]:
        """Decode the ``new`` objects on the judging views (the keyframes and views spread between them),
        keep what :meth:`_reconcile` keeps of ``objects`` there, and decode the kept new ones in the other
        views: candidates that are duplicates, groups or parts are never decoded in every view."""
        posed = [s.index for s in views if s.located is not None]
        count = self.config.judge_views or 2 * len(keyframes)
        centers = np.array([self.scene.views[i].camera.center for i in posed])
        rows = choose_keyframes(centers, count, [posed.index(k) for k in keyframes])
        judges = {posed[k] for k in rows}
        judged = [views[i] for i in sorted(judges)]
        self._decode(judged, new)
        kept = self._reconcile(judged, objects)
        alive = {id(o) for o in kept}
        self._decode([views[i] for i in posed if i not in judges], [o for o in new if id(o) in alive])
        return kept

    def _finish(
        self, views: list[_View], objects: list[_Object], keyframes: list[int], start: float
    ) -> AutoResult:
        cfg = self.config
        tick = time.perf_counter()
        owners = []
        for state in tqdm(views, desc="resolving overlaps", disable=not self.progress):
            full = np.zeros(state.full_size[::-1], dtype=np.uint16)
            if state.located is not None:
                full = self._resolve(state, objects, full=True)
            owners.append(full)
        # user-facing ids: objects that own pixels somewhere, by first view seen, then by area there
        first_seen: dict[int, tuple[int, int]] = {}
        for index, owner in enumerate(owners):
            labels, counts = np.unique(owner[owner > 0], return_counts=True)
            for label, n in zip(labels, counts, strict=True):
                if n >= cfg.min_object_pixels * (owner.size / (views[index].size[0] * views[index].size[1])):
                    first_seen.setdefault(int(label), (index, -int(n)))
        order = sorted(first_seen, key=first_seen.get)
        to_id = np.zeros(len(objects) + 1, dtype=np.uint16)
        for new_id, label in enumerate(order, start=1):
            to_id[label] = new_id
        maps = [to_id[owner] for owner in owners]
        self.seconds.resolve = time.perf_counter() - tick

        tick = time.perf_counter()
        points = self._instance_points(views, maps)
        self.seconds.points = time.perf_counter() - tick

        records = []
        for new_id, label in enumerate(order, start=1):
            obj = objects[label - 1]
            area = {}
            for state, id_map in zip(views, maps, strict=True):
                n = int(np.count_nonzero(id_map == new_id))
                if n:
                    area[self.scene.views[state.index].name] = n
            scores = [s for index, (_, s) in obj.decoded.items() if self.scene.views[index].name in area]
            centroid = extent = None
            if new_id in points:
                xyz = points[new_id][0]
                centroid = xyz.mean(axis=0).round(6).tolist()
                extent = (np.percentile(xyz, 98, axis=0) - np.percentile(xyz, 2, axis=0)).round(6).tolist()
            records.append(
                AutoObject(
                    new_id, list(area), area, float(np.mean(scores)) if scores else 0.0, centroid, extent
                )
            )
        coverage = float(sum(np.count_nonzero(m) for m in maps) / sum(m.size for m in maps))
        self.seconds.total = time.perf_counter() - start
        return AutoResult(self.scene, records, keyframes, coverage, self.seconds, self.notes, maps, points)


def _reach(weights, positive: np.ndarray) -> tuple[int, int] | None:
    """Full-resolution lines [start, stop) whose upscaling ``weights`` (sparse N x 256) touch a
    ``positive`` (256 bool) low-res line; None when none do."""
    touched = np.flatnonzero(weights @ positive.astype(np.float32))
    return (int(touched[0]), int(touched[-1]) + 1) if len(touched) else None


def _nearest(start: int, stop: int, full: int, small: int) -> np.ndarray:
    """Indices of the ``small`` raster's lines that cv2.INTER_NEAREST gives full lines [start, stop)."""
    return np.minimum(np.floor(np.arange(start, stop) * (small / full)).astype(np.int64), small - 1)


def consistency(result: AutoResult, neighbours: int = 2, stride: int = 2) -> float:
    """MastSAM's consistency of the id maps: pixel pairs of neighbouring views (``neighbours`` nearest
    cameras of each view) that see the same 3D point and carry the same id; NaN with < 2 posed views."""
    return id_map_consistency(
        result.scene, [result.id_map(i) for i in range(len(result.scene))], neighbours, stride
    )


def id_map_consistency(scene: Scene, maps: list[np.ndarray], neighbours: int = 2, stride: int = 2) -> float:
    """MastSAM's consistency of any per-view HxW integer id maps (see :func:`consistency`)."""
    posed = [i for i, v in enumerate(scene.views) if v.camera is not None and v.has_depth]
    if len(posed) < 2:
        return float("nan")
    cameras, depths, labels = [], [], []
    for i in posed:
        view = scene.views[i]
        size = working_size((view.height, view.width))
        cameras.append(resize_camera(view.camera, *size))
        depths.append(np.nan_to_num(sample_at_centres(view.depth, size)).astype(np.float32))
        labels.append(sample_at_centres(np.asarray(maps[i]), size).astype(np.int64))
    centers = np.array([c.center for c in cameras])
    pairs = set()
    for a in range(len(posed)):
        nearest = np.argsort(np.linalg.norm(centers - centers[a], axis=1))[1 : 1 + neighbours]
        pairs |= {(a, int(b)) for b in nearest} | {(int(b), a) for b in nearest}
    return multiview_consistency(cameras, depths, labels, sorted(pairs), stride=stride).score
