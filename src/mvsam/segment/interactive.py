"""Interactive multi-view segmentation: prompts on a few views, one consistent mask in every view.

The loop (NTO3D's lift-and-reprompt, training-free, with MV-SAM's one shared 3D state):

1. SAM segments the prompted views from the user's clicks, boxes or masks.
2. Every view's mask votes in a voxel grid (:class:`~mvsam.lift.votes.VoxelVotes`): each pixel with depth
   votes for the voxel it sees, inside or outside the mask, so views also vote *against* what they see as
   background. Prompted views vote with ``prompt_weight``.
3. The votes are projected into every view (a view sees exactly the voxels its depth hits): the pixels
   whose voxel is mostly inside form the footprint. A view whose footprint is (nearly) empty does not see
   the object and gets an empty mask.
4. Prompts are derived from each footprint (its box, positive points far from its edge, negative points
   on nearby background) and all views are decoded in one batched SAM pass; of SAM's three candidates the
   one agreeing best with the footprint is kept.
5. Repeat from 2 until the masks stop changing.

Everything runs on SAM's low-res grid (the 256x256 logits cropped to the image: e.g. 256x192 for a 4:3
image), which is also the voting raster; only final masks are upscaled to full size, on demand.
A correction (:meth:`Segmenter.add_prompts`) continues from the same votes and embeddings, re-decoding
only the views whose footprint changed or whose mask puts the new click on the wrong side.

Geometry: dense depth (provided or MVS) when the views have it; otherwise the SfM points each view
observes are splatted into a sparse depth map (prompt propagation through tracks). Unknown is not outside:
pixels without depth where the voxels voted inside the object project (depth from other views) count as
inside, pixels without depth near voted ones take the nearest voted side, and XFeat matches to the prompted
views carry their labels into the others (boxes and candidate choice). A click in a depth hole is lifted to
the surface other views' depth found there; only a click no depth reaches makes its view a matched one.
A view without camera or depth is segmented through those correspondences alone
(:mod:`mvsam.segment.correspondences`), or reported.
The clicked view is the user's: its mask is SAM's own answer to the user's prompts there (highest
predicted IoU among candidates that respect every click), and 3D may only swap it for a candidate within
``anchor_iou`` of it.
Documented behaviours: a prompt set must say where the object is somewhere (a positive click, box or
mask); negative clicks alone are accepted only as corrections after :meth:`Segmenter.segment`. A user
mask is kept as given in its view; user clicks are lifted to 3D and given, as clicks, to every view that
sees their point, and SAM candidates that contradict a click lose. Prompts on different views that
contradict each other in 3D are settled by the weighted vote of all views (prompted views weigh
``prompt_weight``); the result's ``notes`` name each click whose 3D point ended on the losing side.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from tqdm import tqdm

from mvsam.errors import InputError
from mvsam.evaluate.metrics import iou
from mvsam.geometry.features import Features, scene_features
from mvsam.lift.project import project_points, resize_camera, splat_points
from mvsam.lift.votes import ViewVoxels, VoxelVotes
from mvsam.lift.voxels import VoxelGrid, default_voxel_size
from mvsam.sam.model import LOW_RES_MASK_SIZE
from mvsam.sam.predictor import ImageEmbedding, Prompt, SamPredictor, resized_size, upscale_logits
from mvsam.scene import Camera, Scene
from mvsam.segment.correspondences import (
    MatchCache,
    TransferredPoints,
    agreement,
    labels_from_matches,
    spread,
)
from mvsam.segment.masks import interior_points, spread_points
from mvsam.segment.prompts import UserPrompt, ViewPrompts, group_prompts

log = logging.getLogger(__name__)

MASK_PROMPT_LOGIT = 8.0  # magnitude of the low-res logits made from a user's binary mask


@dataclass
class SegmenterConfig:
    """Knobs of :class:`Segmenter`; defaults chosen on DTU scan 24 (benchmarks/bench_interactive.py)."""

    max_iterations: int = 4  # propagation rounds after the prompted views are segmented
    tolerance: float = 0.01  # stop when the mean per-view mask change (1 - IoU) falls below this
    positive_points: int = 4  # derived positive points per view
    negative_points: int = 2  # derived negative points per view
    box_margin: float = 0.03  # the derived box grows by this share of its size on each side
    mask_prompt: bool = True  # from the second round on, feed each view its own previous logits
    min_visible: int = 12  # footprint pixels (working raster) below which a view does not see the object
    prompt_weight: float = 8.0  # vote weight of prompted views (others vote 1)
    voxel_factor: float = 1.5  # voxel side = this x the median footprint of one working pixel
    depth_source: str = "auto"  # "auto" (dense when every posed view has depth), "dense" or "sparse"
    min_confidence: float = 0.0  # depth pixels with lower confidence are treated as unknown
    sparse_radius: int = 2  # splat radius (working pixels) of SfM points in sparse mode
    unseen_reach: float = 0.5  # the box takes in not-yet-voted pixels up to this x the object's size away
    redecode_change: float = 0.02  # a view is decoded again only if its footprint changed more than this
    transfer_weight: float = 0.5  # weight of agreement with labels matched from the prompted views (0: off)
    transfer_box: bool = True  # the derived box takes in the positives matched from the prompted views
    fill_radius: int = 6  # unknown pixels (no depth) this close to known ones take the nearest one's side
    anchor_iou: float = (
        0.95  # in a prompted view, 3D may only pick candidates this close to the user's object
    )
    silhouette_fill: bool = True  # pixels without depth where the voted object projects count as inside

    def validate(self) -> None:
        if self.max_iterations < 1:
            raise InputError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if self.positive_points < 1 or self.negative_points < 0:
            raise InputError("need positive_points >= 1 and negative_points >= 0")
        if self.depth_source not in ("auto", "dense", "sparse"):
            raise InputError(f"depth_source must be auto, dense or sparse, got {self.depth_source!r}")
        if self.fill_radius < 0 or not 0 <= self.anchor_iou <= 1:
            raise InputError("fill_radius must be >= 0 and anchor_iou in [0, 1]")
        if self.prompt_weight <= 0 or self.voxel_factor <= 0 or self.sparse_radius < 0:
            raise InputError("prompt_weight and voxel_factor must be positive, sparse_radius >= 0")


@dataclass
class StageSeconds:
    """Where the time of one call went (seconds)."""

    encode: float = 0.0  # SAM image embeddings (from the cache when warm)
    locate: float = 0.0  # working depth maps and their voxels
    decode: float = 0.0  # SAM decoder passes
    vote: float = 0.0  # 3D votes and footprints
    prompts: float = 0.0  # deriving prompts and choosing candidates
    total: float = 0.0


@dataclass
class ViewResult:
    """The outcome in one view."""

    name: str
    visible: bool  # the object is seen (a non-empty mask)
    score: float  # SAM's predicted IoU of the kept mask; 0 when not visible
    agreement: float  # IoU of the kept mask with the 3D footprint (known pixels); NaN when not compared
    prompted: bool  # the user prompted this view
    geometry: str = "3d"  # "3d" (camera and depth), "correspondences" (no camera: matched features), "none"


@dataclass
class SegmentationResult:
    views: list[ViewResult]
    iterations: int  # propagation rounds run
    converged: bool  # the masks stopped changing before max_iterations
    changes: list[float]  # mean per-view mask change (1 - IoU) after each round
    seconds: StageSeconds
    notes: list[str] = field(default_factory=list)


@dataclass
class _ViewState:
    """Working state of one view; rasters are SAM's low-res grid cropped to the image (h x w)."""

    index: int
    size: tuple[int, int]  # (w, h) of the working raster
    camera: Camera | None  # at the working raster
    depth: np.ndarray | None = None  # h x w float32 working depth (0 = unknown)
    located: ViewVoxels | None = None
    sparse: bool = False
    logits: np.ndarray | None = None  # 256x256 float32 kept low-res logits (None: no SAM mask)
    mask: np.ndarray | None = None  # h x w bool working mask (None: no opinion yet)
    soft: np.ndarray | None = None  # h x w float in [0, 1] that votes (a user mask keeps its soft edge)
    shares: tuple[np.ndarray, np.ndarray] | None = None  # (soft, its VoxelVotes.shares) of the last vote
    score: float = 0.0
    agreement: float = float("nan")
    footprint_fg: np.ndarray | None = None  # footprint at the last decode, to skip unchanged views
    clicks_seen: tuple[int, ...] = ()  # user clicks in the prompt at the last decode
    full_mask: np.ndarray | None = None  # cached full-resolution mask
    anchor: np.ndarray | None = None  # h x w bool: SAM's answer to the user's own prompts in this view
    coverage: np.ndarray | None = None  # h x w int32: object voxels landing on each pixel (views with holes)
    covered: tuple[np.ndarray, np.ndarray] | None = None  # (coverage, h x w bool silhouette made from it)
    regions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (h x w int8 sides, object, background)


@dataclass
class _Click3D:
    """A user click and the world point it hit (None where its view has no depth there)."""

    view: int
    xy: np.ndarray  # (x, y) full-resolution pixels of its view
    label: int  # 1 object, 0 background
    xyz: np.ndarray | None


def _working_raster(width: int, height: int) -> tuple[int, int]:
    """(w, h) of a view's working raster: SAM's 256 low-res grid cropped to the image."""
    height, width = (math.ceil(s / 4) for s in resized_size((height, width)))
    return width, height


def _centers_to_raster(count_full: int, count_work: int) -> np.ndarray:
    """Index of the full-resolution pixel nearest each working pixel centre (pixel centres at +0.5)."""
    centers = (np.arange(count_work) + 0.5) * count_full / count_work - 0.5
    return np.clip(np.rint(centers), 0, count_full - 1).astype(np.int64)


def _work_to_full(xy: np.ndarray, work_size: tuple[int, int], full_size: tuple[int, int]) -> np.ndarray:
    """Nx2 (x, y) working pixels -> full-resolution pixels (same field of view)."""
    scale = np.array([full_size[0] / work_size[0], full_size[1] / work_size[1]])
    return (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5


def _full_to_work(xy: np.ndarray, work_size: tuple[int, int], full_size: tuple[int, int]) -> np.ndarray:
    scale = np.array([work_size[0] / full_size[0], work_size[1] / full_size[1]])
    return (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5


def _fill_unknown(footprint: np.ndarray, radius: int) -> np.ndarray:
    """A copy of an h x w float footprint whose NaN pixels within ``radius`` pixels of a finite one take
    that nearest pixel's value (others stay NaN)."""
    known = np.isfinite(footprint)
    if radius == 0 or known.all() or not known.any():
        return footprint
    distance, labels = cv2.distanceTransformWithLabels(
        (~known).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    values = footprint[known]  # labels number the known pixels in raster order, from 1
    filled = footprint.copy()
    near = ~known & (distance <= radius)
    filled[near] = values[labels[near] - 1]
    return filled


def _keep_large_components(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Drop connected components smaller than max(min_pixels, 10% of the largest) (depth speckle)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= max(min_pixels, 0.1 * areas.max())
    return keep[labels]


class Segmenter:
    """Consistent masks of one object in every view of a scene with geometry (``scene.geometry()``).

    ``segment(prompts)`` starts from scratch; ``add_prompts(prompts)`` corrects the current state.
    ``mask(view)`` gives a view's full-resolution HxW bool mask.
    """

    def __init__(
        self,
        scene: Scene,
        predictor: SamPredictor | None = None,
        config: SegmenterConfig | None = None,
        progress: bool = True,
    ) -> None:
        self.scene = scene
        self.config = config or SegmenterConfig()
        self.config.validate()
        self.progress = progress
        if predictor is None:
            from mvsam.sam import load_predictor

            predictor = load_predictor("mobile_sam", cache_dir=scene.cache_dir / "embeddings")
        self.predictor = predictor
        if not any(view.camera is not None for view in scene.views):
            raise InputError("the scene has no cameras; run scene.geometry() (SfM) before segmenting")
        self._embeddings: list[ImageEmbedding | None] = [None] * len(scene.views)
        self._states: list[_ViewState] | None = None
        self.votes: VoxelVotes | None = None
        self.user: dict[int, ViewPrompts] = {}
        self.sparse_mode = False
        self._clicks: list[_Click3D] = []
        self._transfers: dict[int, TransferredPoints] = {}  # view -> labels matched from the sources
        self._sources: set[int] = set()  # prompted views whose masks are carried by matches
        self._correspondences = MatchCache()  # shared by copies (mask-independent, add-only)
        self._surface: np.ndarray | None = None  # see _surface_voxels
        self._covered: tuple[np.ndarray, np.ndarray] | None = None  # (table keys, inside rows) of coverage

    # --- preparation ----------------------------------------------------------------------------

    def _choose_mode(self) -> bool:
        """True for sparse mode (SfM tracks), False for dense depth."""
        posed = [v for v in self.scene.views if v.camera is not None]
        dense = all(v.has_valid_depth for v in posed)
        source = self.config.depth_source
        if source == "dense" and not dense:
            raise InputError("depth_source='dense' but some posed views have no depth; run scene.geometry()")
        if source == "sparse" or (source == "auto" and not dense):
            if self.scene.sparse is None or len(self.scene.sparse.xyz) == 0:
                raise InputError(
                    "the views have no depth and the scene has no SfM points: run scene.geometry() first"
                )
            return True
        return False

    def _working_depth(self, index: int, size: tuple[int, int], camera: Camera) -> np.ndarray:
        """h x w float32 depth at the working raster: dense depth sampled at pixel centres, or splatted
        SfM observations of this view."""
        view = self.scene.views[index]
        width, height = size
        if not self.sparse_mode:
            depth = view.depth
            rows = _centers_to_raster(depth.shape[0], height)
            cols = _centers_to_raster(depth.shape[1], width)
            work = depth[np.ix_(rows, cols)].astype(np.float32)
            if view.depth_confidence is not None and self.config.min_confidence > 0:
                confidence = view.depth_confidence[np.ix_(rows, cols)]
                work = np.where(confidence >= self.config.min_confidence, work, 0).astype(np.float32)
            return np.where(np.isfinite(work), work, 0).astype(np.float32)
        points, _ = self.scene.sparse.observations_in(index)
        xyz = self.scene.sparse.xyz[np.unique(points)]
        return splat_points(camera, xyz, width, height, self.config.sparse_radius).depth

    def prepare(self, first: Sequence[str | int] = ()) -> StageSeconds:
        """Embed every view (cached on disk) and find the voxels each view sees; runs once.

        ``first``: views (names or indices) to embed before the others, e.g. the prompted ones, so
        their embeddings exist as early as possible. The next image is decoded while one is encoded.
        """
        seconds = StageSeconds()
        if self._states is not None:
            return seconds
        start = time.perf_counter()
        views = self.scene.views
        leading = list(dict.fromkeys(self.scene.view_index(v) for v in first))
        order = leading + [i for i in range(len(views)) if i not in set(leading)]
        order = [i for i in order if self._embeddings[i] is None]  # first_masks() embedded some
        with ThreadPoolExecutor(max_workers=1) as reader:
            pending = reader.submit(views[order[0]].load_image) if order else None
            for position, index in enumerate(
                tqdm(order, desc="SAM embeddings", unit="view", disable=not self.progress)
            ):
                image = pending.result()
                if position + 1 < len(order):
                    pending = reader.submit(views[order[position + 1]].load_image)
                self._embeddings[index] = self.predictor.encode(image)
        seconds.encode = time.perf_counter() - start
        start = time.perf_counter()
        self.sparse_mode = self._choose_mode()
        states, depths = [], {}
        for index, view in enumerate(views):
            width, height = _working_raster(view.width, view.height)
            camera = None if view.camera is None else resize_camera(view.camera, width, height)
            states.append(
                _ViewState(index=index, size=(width, height), camera=camera, sparse=self.sparse_mode)
            )
            if camera is not None:
                depths[index] = self._working_depth(index, (width, height), camera)
        with_depth = [i for i in depths if np.any(depths[i] > 0)]
        if not with_depth:
            raise InputError("no view has usable depth or SfM observations; cannot relate the views")
        factor = self.config.voxel_factor * (2.0 if self.sparse_mode else 1.0)
        size = default_voxel_size(
            [states[i].camera for i in with_depth], [depths[i] for i in with_depth], factor
        )
        origin = np.mean([views[i].camera.center for i in with_depth], axis=0)
        self.votes = VoxelVotes(VoxelGrid(size, origin))
        for index in with_depth:
            states[index].depth = depths[index]
            states[index].located = self.votes.locate(states[index].camera, depths[index])
        self._states = states
        seconds.locate = time.perf_counter() - start
        log.info(
            "segmenter: %d views, voxel %.4g, %s depth",
            len(views),
            size,
            "sparse" if self.sparse_mode else "dense",
        )
        return seconds

    # --- public API -----------------------------------------------------------------------------

    def segment(self, prompts: Sequence[UserPrompt]) -> SegmentationResult:
        """Segment the object the prompts point at, in every view, from a clean state."""
        start = time.perf_counter()
        seconds = self.prepare()
        grouped = self._group(prompts, first=True)
        self.user = grouped
        self._sources = set()
        for state in self._states:
            state.logits = state.mask = state.soft = state.footprint_fg = state.full_mask = None
            state.anchor = None
            state.score, state.agreement = 0.0, float("nan")
        self.votes.clear()
        return self._run(list(grouped), seconds, start)

    def first_masks(self, prompts: Sequence[UserPrompt]) -> dict[int, np.ndarray]:
        """View index -> HxW bool full-resolution mask of each prompted view with a positive prompt, from
        the prompts alone: what to show right after a click, before the geometry and the other views'
        embeddings exist.

        The masks are the ones :meth:`segment` starts from (SAM's candidate with the fewest clicks on the
        wrong side, then the highest predicted IoU; a user mask as given); 3D may later swap one for a
        candidate within ``anchor_iou`` of it. Only the prompted views are embedded, and kept for
        :meth:`prepare`; masks, prompts and votes are left as they are.
        """
        grouped = self._group(prompts, first=True)
        pairs = []
        for index, user in grouped.items():
            if not user.has_positive:
                continue
            view = self.scene.views[index]
            if self._embeddings[index] is None:
                self._embeddings[index] = self.predictor.encode(view.load_image())
            state = _ViewState(index=index, size=_working_raster(view.width, view.height), camera=None)
            pairs.append((user, state))
        self._answer_prompts(pairs)
        return {state.index: self._full_mask(state, user) for user, state in pairs}

    def add_prompts(self, prompts: Sequence[UserPrompt]) -> SegmentationResult:
        """Correct the current segmentation with more prompts (e.g. one click): every view follows."""
        if self._states is None or not self.user:
            raise ValueError("nothing to correct yet: call segment(prompts) first")
        start = time.perf_counter()
        seconds = StageSeconds()
        grouped = self._group(prompts)
        for index, new in grouped.items():
            old = self.user.get(index)
            if old is None:
                self.user[index] = new
                continue
            if new.box is not None and old.box is not None or new.mask is not None and old.mask is not None:
                raise InputError(f"view {self.scene.views[index].name} already has a box/mask prompt")
            self.user[index] = ViewPrompts(
                view=index,
                points=np.concatenate([old.points, new.points]),
                labels=np.concatenate([old.labels, new.labels]),
                box=old.box if new.box is None else new.box,
                mask=old.mask if new.mask is None else new.mask,
            )
        return self._run(list(grouped), seconds, start)

    def mask(self, view: str | int) -> np.ndarray:
        """HxW bool full-resolution mask of a view (empty where the object is not visible)."""
        state = self._states_or_raise()[self.scene.view_index(view)]
        if state.full_mask is None:
            state.full_mask = self._full_mask(state, self.user.get(state.index))
        return state.full_mask

    def _full_mask(self, state: _ViewState, user: ViewPrompts | None) -> np.ndarray:
        if user is not None and user.mask is not None and len(user.points) == 0:
            return user.mask.copy()
        if state.logits is None:
            scene_view = self.scene.views[state.index]
            return np.zeros((scene_view.height, scene_view.width), dtype=bool)
        logits = torch.from_numpy(state.logits)[None, None]
        return (upscale_logits(logits, self._embeddings[state.index])[0, 0] > 0).numpy()

    def work_mask(self, view: str | int) -> np.ndarray:
        """h x w bool mask at the working raster (SAM's low-res grid cropped to the image)."""
        state = self._states_or_raise()[self.scene.view_index(view)]
        width, height = state.size
        return np.zeros((height, width), dtype=bool) if state.mask is None else state.mask.copy()

    def working_size(self, view: str | int) -> tuple[int, int]:
        """(w, h) of a view's working raster."""
        return self._states_or_raise()[self.scene.view_index(view)].size

    def embedding(self, view: str | int) -> ImageEmbedding:
        """SAM's embedding of a view (after :meth:`prepare`)."""
        self._states_or_raise()
        return self._embeddings[self.scene.view_index(view)]

    def working_view(self, view: str | int) -> tuple[Camera | None, np.ndarray | None]:
        """(camera, h x w float32 depth) of a view at the working raster; None where geometry is missing."""
        state = self._states_or_raise()[self.scene.view_index(view)]
        return state.camera, state.depth

    def copy(self) -> Segmenter:
        """An independent copy to try a change on (the web app's undo snapshots).

        The working state (masks, logits, prompts, votes) is copied; the scene, predictor, embeddings,
        per-view geometry, the surface voxels and the correspondence cache are shared: they are read-only or
        add-only, and every per-view array is replaced, never written in place, when a view changes.
        """
        clone = copy.copy(self)
        clone._embeddings = list(self._embeddings)
        if self._states is not None:
            clone._states = [copy.copy(state) for state in self._states]
        clone.votes = None if self.votes is None else self.votes.copy()  # vote() adds to counts in place
        clone.user = dict(self.user)
        clone._clicks = list(self._clicks)
        clone._transfers = dict(self._transfers)
        clone._sources = set(self._sources)
        return clone

    def object_points(
        self, min_probability: float = 0.5, min_views: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        """(Nx3 float64 voxel centres, Nx3 uint8 mean colours) of the voxels voted inside the object.

        A voxel must be inside in the weighted vote and seen by at least ``min_views`` views, which drops
        stray voxels that one view's mask edge put on the background behind the object.
        """
        states = self._states_or_raise()
        votes = self.votes
        colour_sum = np.zeros((len(votes), 3))
        colour_count = np.zeros(len(votes))
        views_seen = np.zeros(len(votes))
        for state in states:
            if state.located is None or state.mask is None:
                continue
            rows = np.searchsorted(votes.keys, state.located.keys)
            views_seen[rows] += 1
            if not state.mask.any():
                continue
            width, height = state.size
            image = self.scene.views[state.index].load_image()
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            pixel_rows = rows[state.located.inverse]
            hit_mask = state.mask[state.located.hit]
            colours = image[state.located.hit].astype(np.float64)
            for channel in range(3):
                colour_sum[:, channel] += np.bincount(
                    pixel_rows[hit_mask], weights=colours[hit_mask, channel], minlength=len(votes)
                )
            colour_count += np.bincount(pixel_rows[hit_mask], minlength=len(votes))
        inside = (votes.probability() > min_probability) & (views_seen >= min_views)
        rgb = colour_sum / np.maximum(colour_count, 1)[:, None]
        return votes.centers()[inside], np.clip(np.rint(rgb[inside]), 0, 255).astype(np.uint8)

    # --- the loop -------------------------------------------------------------------------------

    def _states_or_raise(self) -> list[_ViewState]:
        if self._states is None:
            raise ValueError("no segmentation yet: call segment(prompts) first")
        return self._states

    def _group(self, prompts: Sequence[UserPrompt], first: bool = False) -> dict[int, ViewPrompts]:
        """Prompts by view; ``first`` prompts (not a correction) must say where the object is."""
        if not prompts:
            raise InputError("no prompts given: add a click, a box or a mask on at least one view")
        sizes = [(v.width, v.height) for v in self.scene.views]
        grouped = group_prompts(prompts, self.scene.view_index, sizes)
        if first and not any(p.has_positive for p in grouped.values()):
            raise InputError(
                "the prompts only say what is not the object (negative clicks); add a positive click, a box "
                "or a mask on at least one view (negative clicks alone are only accepted as corrections)"
            )
        return grouped

    def _run(self, touched: list[int], seconds: StageSeconds, start: float) -> SegmentationResult:
        states = self._states
        cfg = self.config
        if not any(states[i].located is not None for i in self.user):
            raise InputError(
                "no prompted view has a camera and depth, so the prompts cannot be lifted to 3D; "
                "prompt a view that geometry registered"
            )
        # 1. prompted views without a mask yet are segmented from the user's prompts alone (SAM's own
        # answer is the anchor that 3D may refine but not replace); views with only negative clicks wait
        # for the others' votes (which give them positive points), and views that already have a mask are
        # corrected in the first round with everything known
        tick = time.perf_counter()
        fresh = [i for i in touched if states[i].mask is None or self.user[i].mask is not None]
        self._decode_prompted([i for i in fresh if self.user[i].has_positive])
        self._clicks = self._lift_clicks()
        # the views of the first prompts are matched to every other view; a correction's view only when
        # 3D cannot carry it (a click without depth under it): matching costs ~0.1 s per other view
        if not self._sources:
            self._sources = set(self.user)
        self._sources |= {c.view for c in self._clicks if c.xyz is None and c.view in touched}
        self._transfers = self._transfer_from_prompted() if cfg.transfer_weight > 0 else {}
        seconds.decode += time.perf_counter() - tick
        changes: list[float] = []
        converged = False
        rounds = 0
        force = set(range(len(states))) if set(touched) == set(self.user) else set(touched)
        while rounds < cfg.max_iterations:
            rounds += 1
            tick = time.perf_counter()
            footprints = self._vote_and_project()
            seconds.vote += time.perf_counter() - tick
            change = self._propagate(footprints, force, seconds)
            force = set()
            changes.append(change)
            if change < cfg.tolerance:
                converged = True
                break
        tick = time.perf_counter()
        footprints = self._vote_and_project(set(self.user))  # the final votes, and clicks they overrule
        seconds.vote += time.perf_counter() - tick
        notes = self._conflicts(footprints)
        tick = time.perf_counter()
        kinds = self._segment_by_correspondences(notes)
        seconds.prompts += time.perf_counter() - tick
        seconds.total = time.perf_counter() - start
        results = []
        for state in states:
            visible = state.mask is not None and bool(state.mask.any())
            results.append(
                ViewResult(
                    name=self.scene.views[state.index].name,
                    visible=visible,
                    score=float(state.score) if visible else 0.0,
                    agreement=float(state.agreement),
                    prompted=state.index in self.user,
                    geometry=kinds.get(state.index, "3d"),
                )
            )
        return SegmentationResult(results, rounds, converged, changes, seconds, notes)

    def _view_features(self, indices: list[int]) -> dict[int, Features]:
        """XFeat features of views (cached on disk under the scene cache and in memory by image path)."""
        from mvsam.geometry.sfm import SfmSettings

        sfm = SfmSettings()
        cache = self._correspondences.features
        missing = [i for i in indices if str(self.scene.views[i].image_path) not in cache]
        found = scene_features(self.scene, missing, sfm.xfeat_image_size, sfm.xfeat_num_features)
        for index, features in zip(missing, found, strict=True):
            cache[str(self.scene.views[index].image_path)] = features
        return {i: cache[str(self.scene.views[i].image_path)] for i in indices}

    def _matched_from(
        self, target: int, sources: list[int], features: dict[int, Features]
    ) -> TransferredPoints:
        """Labels of a view's keypoints from the current masks of ``sources`` (matches cached per pair)."""
        from mvsam.geometry.sfm import SfmSettings

        sfm = SfmSettings()
        matched = []
        for source in sources:
            keys = (str(self.scene.views[target].image_path), str(self.scene.views[source].image_path))
            pairs = self._correspondences.verified(
                keys, features[target], features[source], sfm.min_cosine, sfm.match_ratio
            )
            matched.append((features[source], pairs, self.mask(source)))
        return labels_from_matches(features[target], matched)

    def _transfer_from_prompted(self) -> dict[int, TransferredPoints]:
        """For every other view with geometry, labels of its keypoints matched to the source views' masks
        (the user's own object): evidence where depth is missing, e.g. on textureless walls."""
        sources = sorted(i for i in self._sources if self._states[i].mask is not None)
        others = [s.index for s in self._states if s.located is not None and s.index not in self.user]
        if not sources or not others:
            return {}
        features = self._view_features(sources + others)
        transfers = {}
        for index in others:
            points = self._matched_from(index, sources, features)
            if points.sources:
                transfers[index] = points
        return transfers

    def _segment_by_correspondences(self, notes: list[str]) -> dict[int, str]:
        """Masks for views without geometry (no camera, or no depth): the segmented views' masks carried
        over by XFeat matches become SAM prompts there. Returns view index -> "correspondences" | "none"
        for those views and adds a note for each view left without a mask."""
        cfg = self.config
        targets = [s.index for s in self._states if s.located is None and s.index not in self.user]
        sources = [s.index for s in self._states if s.located is not None and s.mask is not None]
        if not targets:
            return {}
        kinds = {index: "none" for index in targets}
        features = self._view_features(targets + sources)
        requests, owners, transfers = [], [], {}
        for index in targets:
            state = self._states[index]
            width, height = state.size
            state.mask = state.soft = np.zeros((height, width), dtype=bool)
            state.logits, state.score, state.full_mask = None, 0.0, None
            points = self._matched_from(index, sources, features)
            name = self.scene.views[index].name
            if points.sources == 0:
                notes.append(f"{name}: no camera and too few feature matches to segmented views; no mask")
                continue
            kinds[index] = "correspondences"
            positives = points.xy[points.labels == 1]
            if len(positives) == 0:
                continue  # matched, but every match lands outside the object: not visible here
            inside = spread(positives, cfg.positive_points)
            negatives = points.xy[points.labels == 0]
            near = negatives[np.argsort(np.linalg.norm(negatives - np.median(positives, 0), axis=1))]
            outside = spread(near[: max(4 * cfg.negative_points, 1)], cfg.negative_points)
            prompt_points = np.concatenate([inside, outside.reshape(-1, 2)])
            labels = np.array([1] * len(inside) + [0] * len(outside), dtype=np.int64)
            requests.append((self._embeddings[index], Prompt(points=prompt_points, labels=labels)))
            owners.append(index)
            transfers[index] = points
        predictions = (
            self.predictor.predict_batch(requests, multimask=True, return_masks=False) if requests else []
        )
        for index, prediction in zip(owners, predictions, strict=True):
            state = self._states[index]
            view = self.scene.views[index]
            width, height = state.size
            points = transfers[index]
            work = _full_to_work(points.xy, state.size, (view.width, view.height))
            moved = TransferredPoints(work, points.labels, points.sources)
            scores = [agreement(c[:height, :width] > 0, moved) for c in prediction.low_res_logits]
            best = int(np.argmax(np.array(scores) + 0.01 * prediction.scores))
            self._keep(state, prediction.low_res_logits[best], float(prediction.scores[best]))
            state.agreement = scores[best]
        return kinds

    def _decode_prompted(self, indices: list[int]) -> None:
        """Segment prompted views from the user's prompts alone (a user mask is kept as it is)."""
        self._answer_prompts([(self.user[i], self._states[i]) for i in indices])

    def _answer_prompts(self, pairs: list[tuple[ViewPrompts, _ViewState]]) -> None:
        """Each state's mask and anchor: SAM's answer to its user prompts (see ``_best_for_clicks``)."""
        requests, owners, multimask_flags = [], [], []
        for user, state in pairs:
            index = state.index
            state.full_mask = None
            if user.mask is not None and len(user.points) == 0 and user.box is None:
                width, height = state.size
                soft = cv2.resize(user.mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
                state.soft = np.clip(soft, 0, 1)
                state.mask = state.soft > 0.5
                state.logits = self._logits_from_mask(user.mask, index)
                state.score = 1.0
                state.anchor = state.mask.copy()
                continue
            mask_logits = None if user.mask is None else self._logits_from_mask(user.mask, index)
            points = user.points if len(user.points) else None
            prompt = Prompt(
                points=points,
                labels=None if points is None else user.labels,
                box=user.box,
                mask_logits=mask_logits,
            )
            requests.append((self._embeddings[index], prompt))
            owners.append((user, state))
            # three candidates unless a box already says which object (SAM's advice for boxes)
            multimask_flags.append(user.box is None)
        for multimask in (True, False):
            chosen = [k for k, flag in enumerate(multimask_flags) if flag == multimask]
            if not chosen:
                continue
            predictions = self.predictor.predict_batch(
                [requests[k] for k in chosen], multimask=multimask, return_masks=False
            )
            for k, prediction in zip(chosen, predictions, strict=True):
                user, state = owners[k]
                best = self._best_for_clicks(user, state, prediction.low_res_logits, prediction.scores)
                self._keep(state, prediction.low_res_logits[best], float(prediction.scores[best]))
                state.anchor = state.mask.copy()

    def _best_for_clicks(
        self, user: ViewPrompts, state: _ViewState, logits: np.ndarray, scores: np.ndarray
    ) -> int:
        """SAM's own choice: the candidate it scores highest (predicted IoU) among those that put the
        fewest of the view's clicks on the wrong side (the user's other clicks overrule SAM)."""
        width, height = state.size
        candidates = logits[:, :height, :width] > 0
        view = self.scene.views[state.index]
        work = np.rint(_full_to_work(user.points, state.size, (view.width, view.height))).astype(np.int64)
        cols, rows = np.clip(work[:, 0], 0, width - 1), np.clip(work[:, 1], 0, height - 1)
        violations = np.array([np.count_nonzero(c[rows, cols] != (user.labels == 1)) for c in candidates])
        fits = np.nonzero(violations == violations.min())[0]
        return int(fits[np.argmax(scores[fits])])

    def _lift_clicks(self) -> list[_Click3D]:
        """Every user click with its 3D point (from its view's working depth; None where unknown)."""
        clicks = []
        for index, user in self.user.items():
            state = self._states[index]
            view = self.scene.views[index]
            for xy, label in zip(user.points, user.labels, strict=True):
                xyz = None
                if state.depth is not None:
                    work = _full_to_work(xy[None], state.size, (view.width, view.height))[0]
                    col, row = (
                        int(np.clip(np.rint(v), 0, n - 1)) for v, n in zip(work, state.size, strict=True)
                    )
                    # the nearest known depth within 2 working pixels (clicks land on depth holes too)
                    rows = slice(max(row - 2, 0), row + 3)
                    cols = slice(max(col - 2, 0), col + 3)
                    window = state.depth[rows, cols]
                    z = None
                    if np.any(window > 0):
                        r, c = np.nonzero(window > 0)
                        nearest = int(np.argmin((r + rows.start - row) ** 2 + (c + cols.start - col) ** 2))
                        z = window[r[nearest], c[nearest]]
                    else:  # a depth hole: the surface other views' depth puts there
                        z = self._surface_depth(state, work)
                    if z is not None:
                        camera = self.scene.views[index].camera
                        xyz = camera.unproject(np.asarray(xy)[None], np.array([z]))[0]
                clicks.append(
                    _Click3D(view=index, xy=np.asarray(xy, dtype=np.float64), label=int(label), xyz=xyz)
                )
        return clicks

    def _surface_depth(self, state: _ViewState, work: np.ndarray) -> float | None:
        """Camera z of the surface at working pixel ``work`` (x, y) of a view, from the voxels other views'
        depth found (seen by at least 2 views; mask-independent), or None when none lands within 1 working
        pixel: of the voxels that do, the one nearest the pixel among those on the front surface (within
        the click-visibility tolerance of the nearest).

        Lifts a click that falls in a hole of its view's depth without matching that view to every other
        one (XFeat, ~0.15 s a view on 2 cores). On DTU scan 24 (pixels 2-7 working pixels from the object
        edge, held-out odd views), the lifted points land on the right side of the ground truth in the
        views that see them 97% (inside) / 73% (outside) of the time; points lifted by their own depth
        99.6% / 79%.
        """
        xy, z, in_image = project_points(state.camera, self._surface_voxels(), *state.size)
        distance = np.hypot(xy[:, 0] - work[0], xy[:, 1] - work[1])
        near = in_image & (distance <= 1.0)
        if not near.any():
            return None
        z, distance = z[near], distance[near]
        front = z <= 1.03 * z.min() + 2 * self.votes.grid.voxel_size
        return float(z[front][np.argmin(distance[front])])

    def _surface_voxels(self) -> np.ndarray:
        """Nx3 world centres of the voxels that at least 2 views' depth hits (computed once, shared by
        copies: it depends on the geometry only)."""
        if self._surface is None:
            keys = np.concatenate([s.located.keys for s in self._states if s.located is not None])
            unique, counts = np.unique(keys, return_counts=True)
            self._surface = self.votes.grid.centers(unique[counts >= 2])
        return self._surface

    def _visible_clicks(self, state: _ViewState) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """(Kx2 full-resolution points, K labels, their indices) of the user clicks this view sees.

        A click is seen in its own view, and in another view when its 3D point projects inside the image
        onto a surface at the same depth (z-buffer test against the working depth).
        """
        view = self.scene.views[state.index]
        points, labels, seen = [], [], []
        for k, click in enumerate(self._clicks):
            if click.view == state.index:
                points.append(click.xy)
            elif click.xyz is not None and state.depth is not None:
                xy, z = state.camera.project(click.xyz[None])
                col, row = np.rint(xy[0]).astype(int)
                width, height = state.size
                if not (z[0] > 0 and 0 <= col < width and 0 <= row < height):
                    continue
                surface = state.depth[row, col]
                if surface <= 0 or abs(z[0] - surface) > 0.03 * surface + 2 * self.votes.grid.voxel_size:
                    continue
                points.append(_work_to_full(xy, state.size, (view.width, view.height))[0])
            else:
                continue
            labels.append(click.label)
            seen.append(k)
        return (
            np.array(points, dtype=np.float64).reshape(-1, 2),
            np.array(labels, dtype=np.int64),
            tuple(seen),
        )

    def _logits_from_mask(self, mask: np.ndarray, index: int) -> np.ndarray:
        """256x256 low-res logits (+/- MASK_PROMPT_LOGIT) of a full-resolution bool mask, padded like SAM."""
        embedding = self._embeddings[index]
        height, width = embedding.input_size
        resized = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
        padded = np.zeros((1024, 1024), dtype=np.float32)
        padded[:height, :width] = resized
        low = cv2.resize(padded, (LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), interpolation=cv2.INTER_AREA)
        return np.where(low > 0.5, MASK_PROMPT_LOGIT, -MASK_PROMPT_LOGIT).astype(np.float32)

    def _keep(self, state: _ViewState, logits: np.ndarray, score: float) -> None:
        width, height = state.size
        state.logits = np.asarray(logits, dtype=np.float32)
        state.mask = state.logits[:height, :width] > 0
        state.soft = state.mask
        state.score = score
        state.full_mask = None

    def _vote_and_project(self, views: set[int] | None = None) -> list[np.ndarray | None]:
        """Vote every view's current mask and return the footprints (h x w float, NaN unknown) of
        ``views`` (default: all; None for the others)."""
        votes = self.votes
        votes.clear()
        for state in self._states:
            if state.located is None or state.soft is None:
                continue
            weight = self.config.prompt_weight if state.index in self.user else 1.0
            # a view's soft mask is replaced, never edited, when it changes: unchanged views (most, after
            # a correction) reuse their shares
            if state.shares is None or state.shares[0] is not state.soft:
                state.shares = (state.soft, votes.shares(state.located, state.soft))
            votes.vote(state.located, state.soft, weight, share=state.shares[1])
        return [
            None
            if s.located is None or (views is not None and s.index not in views)
            else votes.footprint(s.located)
            for s in self._states
        ]

    def _regions(self, state: _ViewState, footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(object, background) h x w bool from a footprint; sparse footprints are grown into regions.

        Unknown is not outside: pixels without a vote (no depth, e.g. textureless walls) within
        ``fill_radius`` of voted ones take the side of the nearest voted pixel, so an object whose depth
        exists only at its edges and texture still forms one region.
        """
        # they depend on which side of 0.5 each pixel is (or unknown) only: unchanged sides, same regions
        sides = np.where(np.isnan(footprint), np.int8(-1), (footprint > 0.5).astype(np.int8))
        if state.regions is not None and np.array_equal(state.regions[0], sides):
            return state.regions[1], state.regions[2]
        footprint = _fill_unknown(footprint, self.config.fill_radius)
        foreground = footprint > 0.5
        background = footprint <= 0.5  # NaN compares False: unknown is neither
        if state.sparse:
            radius = 2 * self.config.sparse_radius + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            foreground = cv2.morphologyEx(foreground.astype(np.uint8), cv2.MORPH_CLOSE, kernel).astype(bool)
        foreground = _keep_large_components(foreground, self.config.min_visible)
        state.regions = (sides, foreground, background & ~foreground)
        return state.regions[1], state.regions[2]

    def _derive(
        self, state: _ViewState, footprint: np.ndarray, foreground: np.ndarray, background: np.ndarray
    ) -> Prompt:
        """SAM prompts at full-resolution coordinates from a footprint and its :meth:`_regions`.

        Always the same structure (box + positive_points + negative_points), so all views share one pass.
        """
        cfg = self.config
        view = self.scene.views[state.index]
        full = (view.width, view.height)
        rows, cols = np.nonzero(foreground | self._unseen_near(state, footprint, foreground))
        x0, x1, y0, y1 = cols.min() - 0.5, cols.max() + 0.5, rows.min() - 0.5, rows.max() + 0.5
        margin_x, margin_y = cfg.box_margin * (x1 - x0), cfg.box_margin * (y1 - y0)
        corners = _work_to_full(
            np.array(
                [[x0 - margin_x + 0.5, y0 - margin_y + 0.5], [x1 + margin_x - 0.5, y1 + margin_y - 0.5]]
            ),
            state.size,
            full,
        )
        scale = np.array([full[0] / state.size[0], full[1] / state.size[1]])
        corners[0] -= 0.5 * scale
        corners[1] += 0.5 * scale
        box = np.clip(corners.reshape(4), 0, [full[0] - 1, full[1] - 1, full[0] - 1, full[1] - 1])
        positives = interior_points(foreground, cfg.positive_points)
        negatives = self._negative_points(foreground, background, (x1 - x0, y1 - y0))
        if len(positives) < cfg.positive_points:  # pad so every view has the same prompt structure
            positives = np.concatenate(
                [positives, np.repeat(positives[:1], cfg.positive_points - len(positives), 0)]
            )
        labels = [1] * cfg.positive_points + [0] * len(negatives)
        if len(negatives) < cfg.negative_points:
            missing = cfg.negative_points - len(negatives)
            negatives = np.concatenate([negatives.reshape(-1, 2), np.repeat(positives[:1], missing, 0)])
            labels += [1] * missing
        points = _work_to_full(np.concatenate([positives, negatives.reshape(-1, 2)]), state.size, full)
        points = np.clip(points, 0, [full[0] - 1, full[1] - 1])
        return Prompt(points=points, labels=np.array(labels, dtype=np.int64), box=box)

    def _unseen_near(self, state: _ViewState, footprint: np.ndarray, foreground: np.ndarray) -> np.ndarray:
        """Pixels with depth whose voxel no view has voted on yet, next to the object (h x w bool).

        Early on, a view sees parts of the object no voting view saw; they belong in its box, or SAM,
        boxed to the known part, would cut the object there and the cut would be voted in.
        """
        if state.sparse or state.located is None:
            return np.zeros_like(foreground)
        unseen = state.located.hit & np.isnan(footprint)
        if not unseen.any():
            return unseen
        rows, cols = np.nonzero(foreground)
        reach = self.config.unseen_reach * max(np.ptp(rows) + 1, np.ptp(cols) + 1)
        outside = cv2.distanceTransform((~foreground).astype(np.uint8), cv2.DIST_L2, 5)
        near = unseen & (outside <= reach)
        count, labels = cv2.connectedComponents((foreground | near).astype(np.uint8), connectivity=8)
        touching = np.unique(labels[foreground])
        return near & np.isin(labels, touching)

    def _negative_points(
        self, foreground: np.ndarray, background: np.ndarray, box_size: tuple[float, float]
    ) -> np.ndarray:
        """Background points near the object: in a band a few pixels to ~15% of its size outside it."""
        count = self.config.negative_points
        if count == 0 or not background.any():
            return np.zeros((0, 2))
        outside = cv2.distanceTransform((~foreground).astype(np.uint8), cv2.DIST_L2, 5)
        far = max(6.0, 0.15 * float(np.hypot(*box_size)))
        band = background & (outside >= 3) & (outside <= far)
        if not band.any():
            return np.zeros((0, 2))
        rows, cols = np.nonzero(band)
        candidates = np.stack([cols, rows], axis=1).astype(np.float64)
        first = int(np.argmin(np.abs(outside[rows, cols] - 0.5 * far)))
        return spread_points(candidates, first, count)

    def _propagate(
        self, footprints: list[np.ndarray | None], force: set[int], seconds: StageSeconds
    ) -> float:
        """One round: derive prompts, decode the views that need it, keep the best candidates.

        Each view's prompt: the box of its footprint, points derived from it, every user click it sees
        (padded so all views share one structure) and, from the second decode on, its own last logits.
        Views whose footprint and seen clicks barely changed keep their masks. Returns the mean mask
        change (1 - IoU with the previous mask) over the views that are not fixed by a user mask.
        """
        cfg = self.config
        tick = time.perf_counter()
        requests, owners, regions = [], [], {}
        previous = {s.index: s.mask for s in self._states}
        fixed = {i for i, user in self.user.items() if user.mask is not None}
        self._update_coverage()
        for state, footprint in zip(self._states, footprints, strict=True):
            if footprint is None or state.index in fixed:
                continue
            footprint = self._fill_from_silhouette(state, footprint)
            foreground, background = self._regions(state, footprint)
            if np.count_nonzero(foreground) < cfg.min_visible:
                if state.index not in self.user:  # the object is not seen here
                    width, height = state.size
                    state.mask = state.soft = np.zeros((height, width), dtype=bool)
                    state.logits, state.score, state.full_mask = None, 0.0, None
                    state.agreement = float("nan")
                    state.footprint_fg = None
                continue
            points, labels, seen = self._visible_clicks(state)
            if state.index not in force and state.footprint_fg is not None and state.logits is not None:
                union = np.count_nonzero(foreground | state.footprint_fg)
                change = 1 - np.count_nonzero(foreground & state.footprint_fg) / max(union, 1)
                # new clicks matter only where the current mask puts them on the wrong side
                settled = seen == state.clicks_seen or not self._contradicts(
                    state, state.mask, points, labels
                )
                if change <= cfg.redecode_change and settled:
                    continue
            prompt = self._derive(state, footprint, foreground, background)
            user = self.user.get(state.index)
            if user is not None and user.box is not None:
                prompt.box = user.box
            else:  # the box takes in the positive clicks this view sees and the matched positives
                inside = np.concatenate(
                    [
                        points[labels == 1].reshape(-1, 2),
                        self._matched_extent(state.index),
                    ]
                )
                if len(inside):
                    prompt.box = np.concatenate(
                        [np.minimum(prompt.box[:2], inside.min(0)), np.maximum(prompt.box[2:], inside.max(0))]
                    )
            contradicted = self._contradicts(state, foreground, points, labels)
            if contradicted:  # a click says the 3D state is wrong here: trust it, not derived negatives
                prompt.labels = np.ones_like(prompt.labels)
                prompt.points[prompt.labels.size - cfg.negative_points :] = prompt.points[0]
            padding = len(self._clicks) - len(points)
            prompt.points = np.concatenate([prompt.points, points, np.repeat(prompt.points[:1], padding, 0)])
            prompt.labels = np.concatenate([prompt.labels, labels, np.ones(padding, dtype=np.int64)])
            if cfg.mask_prompt and state.logits is not None and not contradicted:
                prompt.mask_logits = state.logits
            requests.append((self._embeddings[state.index], prompt))
            owners.append(state.index)
            regions[state.index] = (foreground, background, seen, points, labels)
        seconds.prompts += time.perf_counter() - tick
        tick = time.perf_counter()
        predictions = (
            self.predictor.predict_batch(requests, multimask=True, return_masks=False) if requests else []
        )
        seconds.decode += time.perf_counter() - tick
        tick = time.perf_counter()
        for index, prediction in zip(owners, predictions, strict=True):
            state = self._states[index]
            foreground, background, seen, points, labels = regions[index]
            width, height = state.size
            candidates = prediction.low_res_logits[:, :height, :width] > 0
            known = foreground | background
            view = self.scene.views[index]
            work = np.rint(_full_to_work(points, state.size, (view.width, view.height))).astype(np.int64)
            cols, rows = np.clip(work[:, 0], 0, width - 1), np.clip(work[:, 1], 0, height - 1)
            agreements, violations = [], []
            for candidate in candidates:
                inter = np.count_nonzero(candidate & foreground)
                union = np.count_nonzero((candidate & known) | foreground)
                agreements.append(inter / max(union, 1))
                violations.append(np.count_nonzero(candidate[rows, cols] != (labels == 1)))
            # the user's clicks come first, then agreement with 3D, then SAM's own score
            ranking = np.array(agreements) + 0.05 * prediction.scores - np.array(violations)
            transfer = self._transfers.get(index)
            if transfer is not None and len(transfer.xy):
                work = _full_to_work(transfer.xy, state.size, (view.width, view.height))
                moved = TransferredPoints(work, transfer.labels, transfer.sources)
                ranking += cfg.transfer_weight * np.array([agreement(c, moved) for c in candidates])
            user = self.user.get(index)
            if user is None or (
                state.anchor is not None and self._contradicts(state, state.anchor, user.points, user.labels)
            ):
                state.anchor = None  # not prompted, or a later click says SAM's first answer was wrong
            if state.anchor is not None:  # a prompted view: 3D refines the user's object, never replaces it
                close = [iou(candidate, state.anchor) >= cfg.anchor_iou for candidate in candidates]
                ranking = np.where(close, ranking, -np.inf)
            best = int(np.argmax(ranking))
            if np.isfinite(ranking[best]):
                self._keep(state, prediction.low_res_logits[best], float(prediction.scores[best]))
                state.agreement = agreements[best]
            state.footprint_fg = foreground
            state.clicks_seen = seen
        seconds.prompts += time.perf_counter() - tick
        changes = []
        for state in self._states:
            old, new = previous[state.index], state.mask
            if new is None or state.index in fixed:
                continue
            if old is None:
                changes.append(1.0 if new.any() else 0.0)
                continue
            union = np.count_nonzero(old | new)
            changes.append(0.0 if union == 0 else 1 - np.count_nonzero(old & new) / union)
        return float(np.mean(changes)) if changes else 0.0

    def _update_coverage(self) -> None:
        """Bring every fillable view's ``coverage`` (see :meth:`_fill_from_silhouette`) to the voxels the
        current votes put inside the object, projecting only the voxels that entered or left that set
        since the last round (after a correction, a few per cent of them)."""
        if not self.config.silhouette_fill:
            return
        votes = self.votes
        inside = votes.probability() > 0.5
        fresh = self._covered is None or self._covered[0] is not votes.keys  # first round, or table grew
        if fresh:
            entered, left = np.nonzero(inside)[0], np.zeros(0, dtype=np.int64)
        else:
            before = self._covered[1]
            entered, left = np.nonzero(inside & ~before)[0], np.nonzero(before & ~inside)[0]
        if fresh or len(entered) or len(left):
            changed = votes.grid.centers(votes.keys[np.concatenate([entered, left])])
            sign = np.concatenate([np.ones(len(entered), np.int32), -np.ones(len(left), np.int32)])
            for state in self._states:
                if state.sparse or state.depth is None or np.all(state.depth > 0):
                    continue
                width, height = state.size
                xy, _, in_image = project_points(state.camera, changed, width, height)
                if not fresh and state.coverage is not None and not in_image.any():
                    continue  # keep the same array: its silhouette (``covered``) is reused
                pixels = np.rint(xy[in_image]).astype(np.int64)
                flat, signs = pixels[:, 1] * width + pixels[:, 0], sign[in_image]
                delta = np.bincount(flat[signs > 0], minlength=width * height) - np.bincount(
                    flat[signs < 0], minlength=width * height
                )
                delta = delta.astype(np.int32).reshape(height, width)
                # replaced, never edited in place: copies share it
                state.coverage = delta if fresh or state.coverage is None else state.coverage + delta
        self._covered = (votes.keys, inside)

    def _fill_from_silhouette(self, state: _ViewState, footprint: np.ndarray) -> np.ndarray:
        """The footprint with its pixels that have no depth of their own set to inside where the object's
        voted voxels land in this view (``state.coverage``, closed, specks dropped).

        Few wide-baseline neighbours leave plane-sweep depth on 3-30% of a view's pixels; the other views'
        depth then stands in for the holes, so a part of the object seen with depth elsewhere is not lost
        here. Pixels with depth keep their own vote.
        """
        if state.coverage is None or not self.config.silhouette_fill:
            return footprint
        if state.covered is None or state.covered[0] is not state.coverage:
            # coverage only, no z-buffer: each voxel centre marks the 3x3 pixels around where it lands
            covered = cv2.dilate((state.coverage > 0).astype(np.uint8), np.ones((3, 3), dtype=np.uint8))
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
            covered = cv2.morphologyEx(covered, cv2.MORPH_CLOSE, kernel).astype(bool)
            state.covered = (state.coverage, _keep_large_components(covered, self.config.min_visible))
        return np.where((state.depth <= 0) & state.covered[1], np.float32(1), footprint)

    def _matched_extent(self, index: int) -> np.ndarray:
        """(2x2) corners of the 5-95% extent of the positives matched from the prompted views (0x2 when
        none or ``transfer_box`` is off), full-resolution pixels."""
        transfer = self._transfers.get(index)
        if not self.config.transfer_box or transfer is None or not np.any(transfer.labels == 1):
            return np.zeros((0, 2))
        matched = transfer.xy[transfer.labels == 1]
        return np.percentile(matched, [5, 95], axis=0)

    def _contradicts(
        self, state: _ViewState, foreground: np.ndarray, points: np.ndarray, labels: np.ndarray
    ) -> bool:
        """Whether a user click this view sees falls on the wrong side of a h x w region."""
        if len(points) == 0:
            return False
        view = self.scene.views[state.index]
        width, height = state.size
        work = np.rint(_full_to_work(points, state.size, (view.width, view.height))).astype(np.int64)
        inside = foreground[np.clip(work[:, 1], 0, height - 1), np.clip(work[:, 0], 0, width - 1)]
        return bool(np.any(inside != (labels == 1)))

    def _conflicts(self, footprints: list[np.ndarray | None]) -> list[str]:
        """Notes for user clicks whose 3D point the votes put on the other side."""
        notes = []
        for index, user in self.user.items():
            state, footprint = self._states[index], footprints[index]
            if footprint is None:
                continue
            view = self.scene.views[index]
            work = _full_to_work(user.points, state.size, (view.width, view.height))
            for (x, y), label, (full_x, full_y) in zip(work, user.labels, user.points, strict=True):
                col = int(np.clip(np.rint(x), 0, state.size[0] - 1))
                row = int(np.clip(np.rint(y), 0, state.size[1] - 1))
                value = footprint[row, col]
                if np.isfinite(value) and (value > 0.5) != bool(label):
                    kind = "positive" if label else "negative"
                    notes.append(
                        f"{kind} click ({full_x:g}, {full_y:g}) on {view.name} is outvoted by the other "
                        f"views (3D vote {value:.2f} for the object)"
                    )
        return notes
