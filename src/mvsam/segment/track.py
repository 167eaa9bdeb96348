"""Video object tracking with SAM: carry the object by optical flow, re-segment, check, remember, re-find.

Each step warps the last mask into the new frame with dense optical flow (OpenCV DIS, computed from the new
frame back to the previous one so the warp is a plain backward lookup), turns the carried shape into SAM
prompts (its box, interior positive points, a low-res mask prompt), decodes SAM on a crop around the carried
object (more pixels on the object than the full frame gives, same encoder cost), and keeps the SAM candidate
that agrees best with the carried shape. A memory of appearance prototypes (mean SAM feature inside confident
masks) decides whether a result is still the object; when it is not, the frame is reported absent and later
frames are searched in full for a region that matches the memory, so the object is found again after
occlusion or when it comes back into view.

For a static scene with cameras and depth (``Tracker.track(frames, prompt, scene=scene)``) the object is
carried by a 3D voxel memory instead of flow, which survives wide camera jumps; see
:mod:`mvsam.segment.track_geometry`.

Frames stream from a :class:`~mvsam.io.video.FrameSource`; the tracker holds two frames, one embedding and a
few 256-d prototypes, so memory stays flat on long videos.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import cv2
import numpy as np
import torch

from mvsam.errors import InputError
from mvsam.io.video import FrameSource
from mvsam.sam.model import IMAGE_SIZE
from mvsam.sam.predictor import ImageEmbedding, Prompt, SamPredictor, upscale_logits
from mvsam.scene import Scene
from mvsam.segment.masks import mask_iou, peak_points
from mvsam.segment.prompting import image_mask_to_low_res_logits
from mvsam.segment.track_memory import FEATURE_GRID, AppearanceMemory, canvas_of

log = logging.getLogger(__name__)

PAD_COLOUR = (124, 116, 104)  # SAM's pixel mean: normalises to zero, like the encoder's own padding
MAX_UPSCALE = 4.0  # a small object's crop is enlarged at most this much in the mosaic
# The mask decoder backend to load a tracker's predictor with (``load_predictor(decoder=...)``): two
# decoder passes per SAM step were ~38% of a cold frame with torch; the exported decoder gives bit-identical
# tracks (car-turn, hockey: every mask, presence and source) at about 1/2.3 of torch's time per pass.
TRACK_DECODER = "auto"


@dataclass
class TrackPrompt:
    """What the user gives on one frame: clicks, a box, or a mask (any one kind, or clicks with a box)."""

    frame: int
    points: np.ndarray | None = None  # Nx2 float, (x, y) pixels
    labels: np.ndarray | None = None  # N int, 1 = object, 0 = background
    box: np.ndarray | None = None  # 4 float, (x0, y0, x1, y1) pixels
    mask: np.ndarray | None = None  # HxW bool at the frame size


@dataclass
class TrackerConfig:
    """Settings of :class:`Tracker`; benchmarks/bench_track.py measures them on DAVIS 2016 and DTU.

    ``TUNED`` names the settings chosen by numbers (cross-validation over the two DAVIS folds, see
    ``bench_track.py --parts cv``); the others are fixed by design or by speed.
    """

    TUNED: ClassVar[tuple[str, ...]] = ("min_share", "same_object")

    tiles: int = 4  # frames whose crops share one encoder pass, as a square mosaic (1, 4 or 9)
    sam_every: int = 1  # run SAM on every k-th frame; frames in between keep the flow-carried mask
    crop_margin: float = 0.5  # crop = carried box grown by this share of its size on each side
    min_crop: int = 192  # smallest crop side, pixels of the frame
    flow_max_side: int = 640  # optical flow runs on frames downscaled to at most this side
    positive_points: int = 3  # interior points of the carried mask given to SAM
    accept_iou: float = 0.5  # a SAM mask must overlap the carried shape at least this much
    memory_iou: float = 0.8  # ... and this much (with a SAM score >= memory_score) to enter the memory
    memory_score: float = 0.85
    memory_frames: int = 6  # confident frames whose cells the appearance memory keeps (besides the prompt's)
    same_object: float = 0.7  # cosine similarity to a remembered object cell for a cell to be object-like
    redetect_share: float = 0.8  # ... and to be found again by a whole-frame search
    min_share: float = 0.3  # share of a mask on object-like cells (vs background) to be the object
    appearance_weight: float = 0.5  # weight of agreement with the object-like cells in choosing a candidate
    min_area: int = 16  # pixels; a smaller carried mask means the object has left the frame
    redetect_every: int = 1  # while the object is absent, search every k-th frame
    min_tile_scale: float = 0.6  # a crop shrunk more than this in the mosaic gets an encoding of its own
    # Static scenes with cameras and depth (``track(..., scene=...)``): see mvsam.segment.track_geometry.
    geometry_max_side: int = 800  # depth is resampled to at most this side for the voxel memory
    voxel_factor: float = 2.0  # voxel side = this many depth pixels at the median depth
    splat_radius: int = 1  # pixels without depth see remembered voxels splatted this wide
    negative_points: int = 2  # background points from the voxel memory given to SAM
    geometry_memory_iou: float = 0.6  # agreement (over known pixels) for a mask to vote into the 3D memory


@dataclass
class FrameResult:
    """The tracker's answer for one frame."""

    index: int  # frame index in the source
    mask: np.ndarray  # HxW bool, empty when absent
    score: float  # confidence in [0, 1]: SAM's predicted IoU times agreement with the carried shape
    present: bool
    source: str  # "prompt", "sam", "flow", "redetect" or "absent"


@dataclass
class _Memory:
    """What the tracker remembers of the object: its appearance against its background, and its areas."""

    cells: AppearanceMemory
    areas: list[int] = field(default_factory=list)
    frames: int = 8  # areas kept

    def add_area(self, area: int) -> None:
        self.areas.append(area)
        del self.areas[: max(0, len(self.areas) - self.frames)]

    @property
    def typical_area(self) -> float:
        return float(np.median(self.areas))

    def plausible(self, area: int) -> bool:
        """Whether a mask of ``area`` pixels could be the object (0.2x to 5x its typical area)."""
        return 0.2 * self.typical_area <= area <= 5 * self.typical_area


@dataclass
class _Tile:
    """A crop of one frame, (x0, y0, x1, y1) integer pixels with x1/y1 exclusive, placed in the mosaic.

    The crop is scaled by ``scale`` into a cell of the 1024x1024 mosaic whose top-left is (cell_x, cell_y).
    """

    x0: int
    y0: int
    x1: int
    y1: int
    cell_x: int = 0
    cell_y: int = 0
    scale: float = 1.0

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the tile in mosaic pixels."""
        return (
            max(1, round((self.y1 - self.y0) * self.scale)),
            max(1, round((self.x1 - self.x0) * self.scale)),
        )

    def region(self) -> np.ndarray:
        """1024x1024 bool: the mosaic pixels of this tile."""
        height, width = self.size
        canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
        canvas[self.cell_y : self.cell_y + height, self.cell_x : self.cell_x + width] = True
        return canvas

    def to_mosaic(self, frame_array: np.ndarray, mosaic: np.ndarray, interpolation: int) -> None:
        """Resize this crop of a HxW[xC] frame array into its cell of ``mosaic`` (in place)."""
        height, width = self.size
        crop = np.ascontiguousarray(frame_array[self.y0 : self.y1, self.x0 : self.x1])
        mosaic[self.cell_y : self.cell_y + height, self.cell_x : self.cell_x + width] = cv2.resize(
            crop, (width, height), interpolation=interpolation
        )

    def mask_to_mosaic(self, mask: np.ndarray) -> np.ndarray:
        """HxW bool frame mask -> 1024x1024 bool mosaic mask (zero outside this tile)."""
        canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
        self.to_mosaic(mask.astype(np.float32), canvas, cv2.INTER_LINEAR)
        return canvas > 0.5

    def logits_to_frame(self, logits: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
        """1024x1024 float mosaic logits -> HxW bool frame mask (zero outside the crop)."""
        height, width = self.size
        cell = logits[self.cell_y : self.cell_y + height, self.cell_x : self.cell_x + width]
        crop = cv2.resize(cell, (self.x1 - self.x0, self.y1 - self.y0), interpolation=cv2.INTER_LINEAR)
        full = np.zeros(frame_size, bool)
        full[self.y0 : self.y1, self.x0 : self.x1] = crop > 0
        return full


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread: the decoder's small ops lose more to thread hand-offs than they gain.

    Measured on the shared 2-core machine: 0.12 s CPU per decode on one thread, 0.5 s on two.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """(x0, y0, x1, y1) float box around a HxW bool mask in pixel-centre coordinates, None when empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)


def crop_around(mask: np.ndarray, margin: float, min_side: int) -> _Tile:
    """A crop around the mask grown by ``margin`` of its size per side, at least ``min_side`` wide/high."""
    height, width = mask.shape
    x0, y0, x1, y1 = mask_box(mask)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = max((x1 - x0 + 1) * (0.5 + margin), min_side / 2)
    half_h = max((y1 - y0 + 1) * (0.5 + margin), min_side / 2)
    return _Tile(
        int(max(0, np.floor(cx - half_w))),
        int(max(0, np.floor(cy - half_h))),
        int(min(width, np.ceil(cx + half_w + 1))),
        int(min(height, np.ceil(cy + half_h + 1))),
    )


class FlowCarrier:
    """Dense DIS optical flow between consecutive frames, and mask warping along it."""

    def __init__(self, max_side: int) -> None:
        self.max_side = max_side
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)

    def _gray(self, image: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = self.max_side / max(gray.shape)
        if scale < 1:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return gray

    def field(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """HxWx2 float32 lookup map: for each pixel of ``current``, its (x, y) in ``previous``."""
        height, width = current.shape[:2]
        gray_prev, gray_cur = self._gray(previous), self._gray(current)
        flow = self.dis.calc(gray_cur, gray_prev, None)
        small_h, small_w = gray_cur.shape
        if (small_h, small_w) != (height, width):
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= width / small_w
            flow[..., 1] *= height / small_h
        flow[..., 0] += np.arange(width, dtype=np.float32)[None, :]
        flow[..., 1] += np.arange(height, dtype=np.float32)[:, None]
        return flow

    @staticmethod
    def warp(mask: np.ndarray, lookup: np.ndarray) -> np.ndarray:
        """HxW bool mask of the previous frame -> HxW bool mask in the current frame."""
        return cv2.remap(mask.astype(np.float32), lookup[..., 0], lookup[..., 1], cv2.INTER_LINEAR) > 0.5


@dataclass
class _Candidate:
    """SAM's best answer on one tile, and how it and the carried mask look against the memory."""

    mask: np.ndarray  # HxW bool, frame size
    score: float  # SAM's predicted IoU
    agreement: float  # IoU with the carried mask
    share: float  # share of the mask on object-like cells
    carried_share: float  # the same for the carried mask
    embedding: ImageEmbedding  # where it was decoded, for the memory
    canvas: np.ndarray  # 1024x1024 bool, the mask on the embedding's canvas
    region: np.ndarray  # 1024x1024 bool, the tile's part of the canvas


@dataclass
class _PassState:
    """What one propagation pass carries from frame to frame, with a constant-velocity model of the box."""

    mask: np.ndarray  # HxW bool, the object's final mask on the last frame handled
    present: bool = True
    score: float = 1.0
    frames_since_sam: int = 0
    frames_since_search: int = 0
    centre: np.ndarray | None = None  # (x, y) box centre of the last present mask
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))  # pixels per frame
    frames_lost: int = 0

    def observe(self, mask: np.ndarray, present: bool) -> None:
        """Update the motion model with a frame's final mask."""
        box = mask_box(mask) if present else None
        if box is None:
            self.frames_lost += 1
            return
        centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        if self.centre is not None:
            step = (centre - self.centre) / (self.frames_lost + 1)
            self.velocity = 0.5 * self.velocity + 0.5 * step
        self.centre, self.frames_lost = centre, 0

    def predicted_centre(self) -> np.ndarray | None:
        """Where the box centre should be now, by constant velocity since it was last seen."""
        return None if self.centre is None else self.centre + self.velocity * (self.frames_lost + 1)


@dataclass
class _Object:
    """One object within a propagation pass."""

    object_id: int
    memory: _Memory
    state: _PassState


@dataclass
class ObjectsResult:
    """The tracker's answer for one frame and every object (masks disjoint), by object id."""

    index: int
    objects: dict[int, FrameResult]

    def id_map(self) -> np.ndarray:
        """HxW int32: the id of the object at each pixel, 0 = none."""
        ids = None
        for object_id, result in self.objects.items():
            ids = np.zeros(result.mask.shape, np.int32) if ids is None else ids
            ids[result.mask] = object_id
        return ids


def disjoint(results: dict[int, FrameResult]) -> None:
    """Give every pixel claimed by several objects to the most confident of them (in place); an object
    left with no pixels is reported absent."""
    if len(results) < 2:
        return
    ids = list(results)
    masks = np.stack([results[i].mask for i in ids])
    claimed = masks.sum(axis=0) > 1
    if not claimed.any():
        return
    confidence = (
        np.array([results[i].score for i in ids])[:, None] + 1e-6 * np.arange(len(ids), 0, -1)[:, None]
    )
    owner = np.argmax(np.where(masks[:, claimed], confidence, -np.inf), axis=0)
    for k, object_id in enumerate(ids):
        result = results[object_id]
        mask = result.mask.copy()
        mask[claimed] = owner == k
        result.mask, result.present = mask, result.present and bool(mask.any())


def validate_objects(prompts: Mapping[int, TrackPrompt], frames: FrameSource) -> int:
    """The one frame all objects are prompted on; InputError for bad ids, frames or prompts."""
    if not prompts:
        raise InputError("no objects to track: give at least one prompt")
    for object_id, prompt in prompts.items():
        if isinstance(object_id, bool) or not isinstance(object_id, (int, np.integer)) or object_id < 1:
            raise InputError(f"object ids are integers >= 1, got {object_id!r}")
        validate_prompt(prompt, frames)
    starts = {prompt.frame for prompt in prompts.values()}
    if len(starts) > 1:
        where = ", ".join(f"object {i} on frame {p.frame}" for i, p in sorted(prompts.items()))
        raise InputError(f"all objects must be prompted on one frame ({where}); track them in separate runs")
    return starts.pop()


def validate_prompt(prompt: TrackPrompt, frames: FrameSource) -> None:
    """ValueError unless the prompt's frame exists and a mask prompt has the frames' size."""
    if not 0 <= prompt.frame < len(frames):
        raise InputError(
            f"prompt frame {prompt.frame} is out of range: the video has frames 0..{len(frames) - 1}"
        )
    if prompt.mask is not None and np.shape(prompt.mask) != frames.size:
        height, width = np.shape(prompt.mask)[:2] if np.ndim(prompt.mask) >= 2 else (0, 0)
        raise InputError(
            f"mask prompt is {width}x{height} but the frames are {frames.size[1]}x{frames.size[0]}; "
            "give a mask of the frame size"
        )
    if prompt.mask is not None and not np.any(prompt.mask):
        raise InputError(f"mask prompt on frame {prompt.frame} is empty")
    if prompt.mask is None and prompt.box is None and not np.any(np.asarray(prompt.labels) == 1):
        raise InputError(
            f"the prompt on frame {prompt.frame} only marks background (no positive click, box or mask); "
            "add a click on the object (label=1), a box or a mask"
        )


BACKGROUND_AREA = 0.10  # share of the frame above which a frame-spanning click mask is background


def is_background(mask: np.ndarray) -> bool:
    """Whether a single click's SAM mask is a background region (road, water, sky, floor), not an object.

    Rule: the mask reaches two opposite borders of the frame and covers at least ``BACKGROUND_AREA`` of it.
    Measured with MobileSAM on the first frames of DAVIS 2016 (2 clicks deep inside the object and 4
    clicks at least 40 px from it per sequence, the highest-scoring of SAM's 3 candidates): chosen on the 8
    ``davis2016_train8`` sequences (refuses 16/32 background clicks, 0/16 object clicks), then on the 8
    ``davis2016_train_more`` sequences it refuses 22/32 background clicks and 0/16 object clicks. Background
    clicks it lets through land on small things SAM treats as objects (people, signs), which can be tracked.
    """
    mask = np.asarray(mask, dtype=bool)
    spans = (mask[0].any() and mask[-1].any()) or (mask[:, 0].any() and mask[:, -1].any())
    return bool(spans) and float(mask.mean()) >= BACKGROUND_AREA


class Tracker:
    """Propagates one object through a video forwards and backwards from a prompted frame."""

    def __init__(self, predictor: SamPredictor, config: TrackerConfig | None = None) -> None:
        self.predictor = predictor
        self.config = config or TrackerConfig()
        if self.config.sam_every < 1 or self.config.redetect_every < 1:
            raise InputError("sam_every and redetect_every must be >= 1")
        if self.config.tiles not in (1, 4, 9):
            raise InputError(f"tiles must be 1, 4 or 9 (a square mosaic), got {self.config.tiles}")
        self.flow = FlowCarrier(self.config.flow_max_side)
        self.grid = int(round(np.sqrt(self.config.tiles)))

    # --- mosaics ----------------------------------------------------------------------------------

    def _layout(self, carried: list[np.ndarray], grid: int | None = None) -> list[_Tile]:
        """One tile per carried mask, in row-major cells of the mosaic, each crop scaled to fit its cell."""
        grid = grid or self.grid
        cell = IMAGE_SIZE // grid
        tiles = []
        for slot, mask in enumerate(carried):
            tile = crop_around(mask, self.config.crop_margin, self.config.min_crop)
            tile.scale = min(cell / max(tile.x1 - tile.x0, tile.y1 - tile.y0), MAX_UPSCALE)
            tile.cell_x, tile.cell_y = (slot % grid) * cell, (slot // grid) * cell
            tiles.append(tile)
        return tiles

    def _encode_crops(
        self, frames: list[np.ndarray], carried: list[np.ndarray]
    ) -> list[tuple[ImageEmbedding, _Tile]]:
        """(embedding, tile) per frame: crops share a mosaic, but one that the mosaic would shrink below
        ``min_tile_scale`` (a large object) gets an encoding of its own so SAM sees it at full detail."""
        tiles = self._layout(carried)
        alone = [t.scale < self.config.min_tile_scale for t in tiles]
        shared = [p for p in range(len(frames)) if not alone[p]]
        out: dict[int, tuple[ImageEmbedding, _Tile]] = {}
        if shared:
            tiles = self._layout([carried[p] for p in shared])
            embedding = self._encode_mosaic([frames[p] for p in shared], tiles)
            out.update({p: (embedding, tile) for p, tile in zip(shared, tiles, strict=True)})
        for position in (p for p in range(len(frames)) if alone[p]):
            (tile,) = self._layout([carried[position]], grid=1)
            out[position] = (self._encode_mosaic([frames[position]], [tile]), tile)
        return [out[p] for p in range(len(frames))]

    def _encode_mosaic(self, frames: list[np.ndarray], tiles: list[_Tile]) -> ImageEmbedding:
        """One encoder pass over a 1024x1024 mosaic of the tiles (unused area is SAM's padding colour)."""
        mosaic = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        mosaic[:] = PAD_COLOUR
        for frame, tile in zip(frames, tiles, strict=True):
            tile.to_mosaic(frame, mosaic, cv2.INTER_AREA if tile.scale < 1 else cv2.INTER_LINEAR)
        return self.predictor.encode(mosaic)

    def _segment_tile(
        self, embedding: ImageEmbedding, tile: _Tile, carried: np.ndarray, memory: _Memory
    ) -> _Candidate | None:
        """SAM on one tile prompted by the carried mask; the candidate that agrees best with the carried
        shape and with the object-like cells of the appearance memory."""
        carried_mosaic = tile.mask_to_mosaic(carried)
        box = mask_box(carried_mosaic)
        if box is None:
            return None
        points = peak_points(carried_mosaic, self.config.positive_points)
        low_res = image_mask_to_low_res_logits(carried_mosaic, embedding.input_size)
        with one_thread():
            requests = [(embedding, Prompt(box=box, mask_logits=low_res))]
            single = self.predictor.predict_batch(requests, multimask=False, return_masks=False)
            requests = [(embedding, Prompt(points=points, labels=np.ones(len(points), np.int64), box=box))]
            multi = self.predictor.predict_batch(requests, multimask=True, return_masks=False)
        logits = np.concatenate([single[0].low_res_logits, multi[0].low_res_logits])
        scores = np.concatenate([single[0].scores, multi[0].scores])
        with torch.inference_mode():
            mosaic_logits = upscale_logits(torch.from_numpy(logits)[None], embedding)[0].numpy()
        region = tile.region()
        margin = memory.cells.margin(embedding, region)
        canvases = [(m > 0) & region for m in mosaic_logits]
        masks = [tile.logits_to_frame(m, carried.shape) for m in mosaic_logits]
        agreement = np.array([mask_iou(m, carried) for m in masks])
        looks = np.array([memory.cells.cell_iou(margin, c) for c in canvases])
        best = int(np.argmax(agreement + self.config.appearance_weight * looks + 0.05 * scores))
        return _Candidate(
            masks[best],
            float(scores[best]),
            float(agreement[best]),
            memory.cells.share(margin, canvases[best]),
            memory.cells.share(margin, carried_mosaic),
            embedding,
            canvases[best],
            region,
        )

    # --- the prompt frame -----------------------------------------------------------------------

    def _initial_mask(self, image: np.ndarray, prompt: TrackPrompt) -> tuple[np.ndarray, float]:
        """HxW bool mask and score on the prompted frame."""
        if prompt.mask is not None:
            return np.asarray(prompt.mask).astype(bool), 1.0
        embedding = self.predictor.encode(image)
        request = Prompt(points=prompt.points, labels=prompt.labels, box=prompt.box)
        single_click = prompt.points is not None and len(prompt.points) == 1 and prompt.box is None
        (result,) = self.predictor.predict_batch([(embedding, request)], multimask=single_click)
        best = int(np.argmax(result.scores))
        if not result.masks[best].any():
            raise InputError(f"SAM found no object for the prompt on frame {prompt.frame}")
        if single_click and prompt.labels[0] == 1 and is_background(result.masks[best]):
            x, y = prompt.points[0]
            raise InputError(
                f"the click ({x:g}, {y:g}) on frame {prompt.frame} selects background: SAM's mask spans the "
                f"frame and covers {100 * result.masks[best].mean():.0f}% of it. Click on the object; if it "
                "really is that large, give a box (--box) or a mask (--mask-prompt) instead"
            )
        return result.masks[best], min(1.0, float(result.scores[best]))

    def _memory_for(self, image: np.ndarray, mask: np.ndarray, whole: ImageEmbedding) -> _Memory:
        """The appearance memory, seeded from the prompt frame twice: laid out like a tracking mosaic (what
        propagation compares with) and whole (what re-detection compares with)."""
        cells = AppearanceMemory(floor=self.config.same_object, frames=self.config.memory_frames)
        ((embedding, tile),) = self._encode_crops([image], [mask])
        if not cells.add(embedding, tile.mask_to_mosaic(mask), tile.region(), permanent=True):
            raise InputError("the prompted object is too small to track (under one SAM feature cell)")
        cells.add(whole, canvas_of(mask, whole), canvas_of(np.ones_like(mask), whole), permanent=True)
        return _Memory(cells, areas=[int(mask.sum())])

    # --- lost objects -----------------------------------------------------------------------------

    def _redetect(
        self, image: np.ndarray, embedding: ImageEmbedding, memory: _Memory, expected: np.ndarray | None
    ) -> tuple[np.ndarray, float] | None:
        """Search the whole frame for the remembered object -> (HxW bool mask, score) or None.

        The object-like cells (closer to remembered object cells than to remembered background) form
        blobs; the strongest blob, discounted by its distance from where the motion model ``expected``
        the object ((x, y) or None), prompts SAM, and a candidate is kept only when it lies mostly on
        object-like cells and has a plausible area.
        """
        region = canvas_of(np.ones(image.shape[:2], bool), embedding)
        margin = memory.cells.margin(embedding, region)
        objectlike = np.nan_to_num(margin, nan=-1.0) > 0
        count, labels, stats, _ = cv2.connectedComponentsWithStats(
            objectlike.astype(np.uint8), connectivity=8
        )
        if count <= 1:
            return None
        scale = np.array(embedding.original_size[::-1]) / np.array(embedding.input_size[::-1])
        cell = IMAGE_SIZE / FEATURE_GRID * scale  # (x, y) pixels of the frame per cell
        diagonal = float(np.hypot(*image.shape[:2]))
        best_blob, best_strength = 0, 0.0
        for blob in range(1, count):
            inside = labels == blob
            strength = float(margin[inside].sum())
            if expected is not None:
                rows, cols = np.nonzero(inside)
                centre = np.array([cols.mean() + 0.5, rows.mean() + 0.5]) * cell
                strength *= float(np.exp(-np.linalg.norm(centre - expected) / (0.5 * diagonal)))
            if strength > best_strength:
                best_blob, best_strength = blob, strength
        inside = labels == best_blob
        peak = np.unravel_index(int(np.argmax(np.where(inside, margin, -np.inf))), margin.shape)
        point = (np.array([[peak[1], peak[0]]]) + 0.5) * cell
        x, y, w, h = stats[best_blob, :4]
        box = np.array([x - 0.5, y - 0.5, x + w + 0.5, y + h + 0.5]) * np.tile(cell, 2)
        limit = [image.shape[1] - 1, image.shape[0] - 1]
        point, box = np.minimum(point, [limit]), np.clip(box, 0, limit * 2)
        with one_thread():
            (result,) = self.predictor.predict_batch(
                [(embedding, Prompt(points=point, labels=np.ones(1, np.int64), box=box))], multimask=True
            )
        best = None
        for mask, score in zip(result.masks, result.scores, strict=True):
            area = int(mask.sum())
            if not memory.plausible(area):
                continue
            share = memory.cells.share(margin, canvas_of(mask, embedding))
            log.debug("re-detection candidate: area %d, SAM score %.3f, object-like %.3f", area, score, share)
            if share >= self.config.redetect_share and (best is None or share > best[2]):
                best = (mask, min(1.0, float(score)), share)
        return None if best is None else (best[0], best[1])

    def _search(
        self,
        index: int,
        frame: np.ndarray,
        state: _PassState,
        memory: _Memory,
        whole: Callable[[], ImageEmbedding],
    ) -> FrameResult:
        """A frame while the object is lost: look for it (every ``redetect_every`` frames)."""
        state.frames_since_search += 1
        found = None
        if state.frames_since_search >= self.config.redetect_every:
            state.frames_since_search = 0
            found = self._redetect(frame, whole(), memory, state.predicted_centre())
        if found is None:
            return FrameResult(index, np.zeros(frame.shape[:2], bool), 0.0, False, "absent")
        state.present, state.frames_since_sam, state.score = True, 0, found[1]
        return FrameResult(index, found[0], found[1], True, "redetect")

    # --- passes -----------------------------------------------------------------------------------

    def _judge(
        self,
        index: int,
        carried: np.ndarray,
        candidate: _Candidate | None,
        state: _PassState,
        memory: _Memory,
    ) -> FrameResult:
        """Keep SAM's mask when flow, appearance and SAM agree, or when it alone looks like the object as
        surely as a re-detection must (and more than the carried mask); else fall back to the carried mask
        while it still looks like the object; else declare the object gone."""
        config = self.config
        if candidate is None:
            return FrameResult(index, carried, state.score, True, "flow")
        log.debug(
            "frame %d: SAM score %.3f, agreement %.3f, object-like %.3f, carried object-like %.3f",
            index,
            candidate.score,
            candidate.agreement,
            candidate.share,
            candidate.carried_share,
        )
        if candidate.agreement >= config.accept_iou and candidate.share >= config.min_share:
            state.score = min(1.0, candidate.score) * candidate.agreement
            if candidate.agreement >= config.memory_iou and candidate.score >= config.memory_score:
                if memory.cells.add(candidate.embedding, candidate.canvas, candidate.region):
                    memory.add_area(int(candidate.mask.sum()))
            return FrameResult(index, candidate.mask, state.score, True, "sam")
        if (
            candidate.share >= config.redetect_share
            and candidate.share > candidate.carried_share
            and memory.plausible(int(candidate.mask.sum()))
        ):  # flow lost the shape (a wide jump, an occluder); SAM's mask near it passes the re-detection bar
            state.score = min(1.0, candidate.score) * candidate.share
            return FrameResult(index, candidate.mask, state.score, True, "sam")
        if candidate.carried_share < config.min_share:
            state.present = False
            return FrameResult(index, np.zeros_like(carried), 0.0, False, "absent")
        state.score *= 0.9
        return FrameResult(index, carried, state.score, True, "flow")

    def _step(
        self,
        index: int,
        frame: np.ndarray,
        lookup: np.ndarray,
        tile: tuple[ImageEmbedding, _Tile] | None,
        obj: _Object,
        whole: Callable[[], ImageEmbedding],
    ) -> FrameResult:
        """One object on one frame: search while lost, else carry by flow, segment, judge."""
        state, memory, config = obj.state, obj.memory, self.config
        if not state.present:
            return self._search(index, frame, state, memory, whole)
        carried = self.flow.warp(state.mask, lookup)
        state.frames_since_sam += 1
        if carried.sum() < config.min_area:
            state.present = False
            return FrameResult(index, np.zeros_like(carried), 0.0, False, "absent")
        candidate = None
        if tile is not None:
            state.frames_since_sam = 0
            candidate = self._segment_tile(*tile, carried, memory)
        result = self._judge(index, carried, candidate, state, memory)
        if not state.present:  # lost just now: it may already be elsewhere in this frame
            state.frames_since_search = 0
            return self._search(index, frame, state, memory, whole)
        return result

    def _finish(self, index: int, frame: np.ndarray, results: dict[int, FrameResult], objects: list[_Object]):
        """Make the objects' masks disjoint and advance every object's state to this frame."""
        disjoint(results)
        for obj in objects:
            result = results[obj.object_id]
            obj.state.mask = result.mask
            obj.state.observe(result.mask, result.present)
        return ObjectsResult(index, results)

    def _batch(
        self, batch: list[tuple[int, np.ndarray]], previous: np.ndarray, objects: list[_Object]
    ) -> Iterator[ObjectsResult]:
        """Frames sharing one encoder pass: predict every object's mask by chaining flow, crop each frame
        around all objects it is due for, encode the crops together, then step each object."""
        config = self.config
        lookups = []
        for _, frame in batch:
            lookups.append(self.flow.field(previous, frame))
            previous = frame
        union = [np.zeros(previous.shape[:2], bool) for _ in batch]
        for obj in objects:
            if not obj.state.present:
                continue
            mask = obj.state.mask
            for position, lookup in enumerate(lookups):
                mask = self.flow.warp(mask, lookup)
                due = (obj.state.frames_since_sam + position + 1) % config.sam_every == 0
                if due and mask.sum() >= config.min_area:
                    union[position] |= mask
        wanted = [position for position in range(len(batch)) if union[position].any()][: config.tiles]
        encoded = self._encode_crops([batch[p][1] for p in wanted], [union[p] for p in wanted])
        tiles = dict(zip(wanted, encoded, strict=True))
        for position, (index, frame) in enumerate(batch):
            whole = functools.cache(lambda frame=frame: self.predictor.encode(frame))
            results = {
                obj.object_id: self._step(index, frame, lookups[position], tiles.get(position), obj, whole)
                for obj in objects
            }
            yield self._finish(index, frame, results, objects)

    def _pass(
        self, frames: FrameSource, indices: range, image: np.ndarray, objects: list[_Object]
    ) -> Iterator[ObjectsResult]:
        """Propagate from the prompt frame (not yielded) through ``indices``."""
        batch: list[tuple[int, np.ndarray]] = []
        frames_per_batch = self.config.tiles * self.config.sam_every
        previous = image
        for index, frame in frames.iterate(indices):
            if not batch and not any(obj.state.present for obj in objects):
                whole = functools.cache(lambda frame=frame: self.predictor.encode(frame))
                results = {
                    obj.object_id: self._search(index, frame, obj.state, obj.memory, whole) for obj in objects
                }
                yield self._finish(index, frame, results, objects)
                previous = frame
                continue
            batch.append((index, frame))
            if len(batch) == frames_per_batch:
                yield from self._batch(batch, previous, objects)
                previous, batch = batch[-1][1], []
        if batch:
            yield from self._batch(batch, previous, objects)

    def track(
        self, frames: FrameSource, prompt: TrackPrompt, scene: Scene | None = None
    ) -> Iterator[FrameResult]:
        """Results for every frame: the prompt frame, then forwards to the end, then backwards to 0.

        With ``scene`` (a static scene whose view i is frame i, with cameras and depth, e.g. after
        ``scene.geometry()``) the object is carried by a 3D voxel memory instead of optical flow; see
        :mod:`mvsam.segment.track_geometry`.
        """
        if scene is not None:
            from mvsam.segment.track_geometry import GeometricTracker

            yield from GeometricTracker(self).track(frames, prompt, scene)
            return
        for result in self.track_objects(frames, {1: prompt}):
            yield result.objects[1]

    def track_objects(
        self, frames: FrameSource, prompts: Mapping[int, TrackPrompt]
    ) -> Iterator[ObjectsResult]:
        """Several objects at once, ``prompts`` by object id (ints >= 1), all on one frame: results for every
        frame in the order of :meth:`track`, each object's mask disjoint from the others'. Each frame's
        crops (around all objects) share one encoder pass; flow is computed once per frame."""
        frame = validate_objects(prompts, frames)
        ((_, image),) = list(frames.iterate(range(frame, frame + 1)))
        first = {}
        for object_id in sorted(prompts):
            mask, score = self._initial_mask(image, prompts[object_id])
            first[object_id] = FrameResult(frame, mask, score, True, "prompt")
        disjoint(first)
        for object_id, result in first.items():
            if not result.mask.any():
                raise InputError(
                    f"object {object_id}'s prompt on frame {frame} selects a region other objects cover "
                    "entirely; give each object its own prompt"
                )
        whole = self.predictor.encode(image)
        memories = {i: self._memory_for(image, r.mask, whole) for i, r in first.items()}
        yield ObjectsResult(frame, first)
        for indices in (range(frame + 1, len(frames)), range(frame - 1, -1, -1)):
            objects = []
            for object_id, result in first.items():
                state = _PassState(mask=result.mask)
                state.observe(result.mask, True)
                objects.append(_Object(object_id, memories[object_id], state))
            yield from self._pass(frames, indices, image, objects)


class ObjectsPass:
    """A forward multi-object pass that objects can join on whichever frame it has reached.

    For callers that find objects as they go (automatic mode: masks over unlabelled pixels of a later
    keyframe start new objects). Objects joined on the first frame propagate exactly as in the forward half
    of :meth:`Tracker.track_objects` (frames are batched per encoder pass the same way between joins).

        run = ObjectsPass(tracker, frames, frame=0)
        run.add(1, mask)                       # HxW bool on frame ``run.frame``
        for result in run.advance(10): ...     # frames 1..9
        run.add(2, other_mask)                 # joins on frame 9
    """

    def __init__(self, tracker: Tracker, frames: FrameSource, frame: int = 0) -> None:
        if not 0 <= frame < len(frames):
            raise InputError(f"frame {frame} is out of range: the video has frames 0..{len(frames) - 1}")
        self.tracker, self.frames, self.frame = tracker, frames, frame
        self._image: np.ndarray | None = None  # the current frame, read on demand
        self._whole: ImageEmbedding | None = None  # ... and its embedding
        self._objects: dict[int, _Object] = {}

    def _current(self) -> np.ndarray:
        if self._image is None:
            ((_, self._image),) = list(self.frames.iterate(range(self.frame, self.frame + 1)))
        return self._image

    def _embedding(self) -> ImageEmbedding:
        if self._whole is None:
            self._whole = self.tracker.predictor.encode(self._current())
        return self._whole

    @property
    def object_ids(self) -> list[int]:
        return list(self._objects)

    def lost(self) -> list[int]:
        """Ids of the objects reported absent on the current frame."""
        return [i for i, obj in self._objects.items() if not obj.state.present]

    def _check_mask(self, mask: np.ndarray) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != self.frames.size:
            raise InputError(
                f"mask is {mask.shape[1] if mask.ndim > 1 else 0}x{mask.shape[0]} but the frames are "
                f"{self.frames.size[1]}x{self.frames.size[0]}; give a mask of the frame size"
            )
        if not mask.any():
            raise InputError(f"the mask given on frame {self.frame} is empty")
        return mask.astype(bool)

    def add(self, object_id: int, mask: np.ndarray) -> None:
        """Start carrying a new object from its HxW bool mask on the current frame (``self.frame``); the
        mask should not overlap the other objects' masks there (later frames are kept disjoint)."""
        if isinstance(object_id, bool) or not isinstance(object_id, (int, np.integer)) or object_id < 1:
            raise InputError(f"object ids are integers >= 1, got {object_id!r}")
        if object_id in self._objects:
            raise InputError(f"object {object_id} is already in this pass; give a new id")
        mask = self._check_mask(mask)
        memory = self.tracker._memory_for(self._current(), mask, self._embedding())
        state = _PassState(mask=mask)
        state.observe(mask, True)
        self._objects[int(object_id)] = _Object(int(object_id), memory, state)

    def resemblance(self, object_id: int, mask: np.ndarray) -> float:
        """Share (by area) of a HxW bool mask of the current frame on cells that look like the object in
        its appearance memory: the tracker's re-detection test (it re-finds at ``redetect_share``)."""
        memory = self._objects[object_id].memory
        embedding = self._embedding()
        margin = memory.cells.margin(embedding, canvas_of(np.ones(self.frames.size, bool), embedding))
        return memory.cells.share(margin, canvas_of(self._check_mask(mask), embedding))

    def reseat(self, object_id: int, mask: np.ndarray) -> None:
        """Give an object a new HxW bool mask on the current frame: a lost object is present again, a
        present one is carried on from this mask (a better view of it than the tracker's)."""
        if object_id not in self._objects:
            raise InputError(f"no object {object_id} in this pass; ids are {self.object_ids}")
        state = self._objects[object_id].state
        mask = self._check_mask(mask)
        if not state.present:
            state.present, state.frames_since_sam, state.frames_since_search = True, 0, 0
            state.observe(mask, True)  # a present object's motion model has seen this frame already
        state.mask = mask

    def advance(self, stop: int) -> Iterator[ObjectsResult]:
        """Carry every object through frames ``frame + 1 .. stop - 1``: one result per frame (masks
        disjoint); afterwards ``frame`` is the last of them."""
        if not self.frame < stop <= len(self.frames):
            raise InputError(f"cannot advance from frame {self.frame} to {stop} in {len(self.frames)} frames")
        objects, indices = list(self._objects.values()), range(self.frame + 1, stop)
        for result in self.tracker._pass(self.frames, indices, self._current(), objects):
            self.frame, self._image, self._whole = result.index, None, None
            yield result
