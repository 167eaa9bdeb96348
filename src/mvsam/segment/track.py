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

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from mvsam.errors import InputError
from mvsam.io.video import FrameSource
from mvsam.sam.model import IMAGE_SIZE, LOW_RES_MASK_SIZE
from mvsam.sam.predictor import ImageEmbedding, Prompt, SamPredictor, upscale_logits
from mvsam.scene import Scene

log = logging.getLogger(__name__)

FEATURE_GRID = 64  # SAM's embedding is 64x64 cells over the padded 1024x1024 input
PAD_COLOUR = (124, 116, 104)  # SAM's pixel mean: normalises to zero, like the encoder's own padding
MAX_UPSCALE = 4.0  # a small object's crop is enlarged at most this much in the mosaic


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
    """Settings of :class:`Tracker`; benchmarks/bench_track.py measures them on DAVIS 2016 and DTU."""

    tiles: int = 4  # frames whose crops share one encoder pass, as a square mosaic (1, 4 or 9)
    sam_every: int = 1  # run SAM on every k-th frame; frames in between keep the flow-carried mask
    crop_margin: float = 0.5  # crop = carried box grown by this share of its size on each side
    min_crop: int = 192  # smallest crop side, pixels of the frame
    flow_max_side: int = 640  # optical flow runs on frames downscaled to at most this side
    positive_points: int = 3  # interior points of the carried mask given to SAM
    accept_iou: float = 0.5  # a SAM mask must overlap the carried shape at least this much
    memory_iou: float = 0.8  # ... and this much (with a SAM score >= memory_score) to enter the memory
    memory_score: float = 0.85
    memory_size: int = 8  # appearance prototypes kept (the prompt frame's is always kept)
    same_object: float = 0.7  # cosine similarity to the memory above which a region is the object
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
    """Appearance prototypes (unit 256-d vectors) of confident masks and their areas."""

    anchor: np.ndarray  # 256 float32, from the prompt frame
    recent: list[np.ndarray] = field(default_factory=list)
    areas: list[int] = field(default_factory=list)

    def similarity(self, prototype: np.ndarray) -> float:
        return max(float(prototype @ p) for p in [self.anchor, *self.recent])

    def add(self, prototype: np.ndarray, area: int, size: int) -> None:
        self.recent.append(prototype)
        self.areas.append(area)
        del self.recent[: max(0, len(self.recent) - (size - 1))]
        del self.areas[: max(0, len(self.areas) - size)]

    @property
    def typical_area(self) -> float:
        return float(np.median(self.areas))


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


def interior_points(mask: np.ndarray, count: int) -> np.ndarray:
    """Up to ``count`` points deep inside the mask (distance-transform peaks, spread apart); Nx2 (x, y)."""
    distance = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    points: list[tuple[float, float]] = []
    deepest = float(distance.max())
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
        radius = float(distance[y, x])
        if radius < 1 or radius < 0.3 * deepest:
            break
        points.append((float(x), float(y)))
        cv2.circle(distance, (int(x), int(y)), int(max(2 * radius, 3)), 0, -1)
    return np.array(points, dtype=np.float64).reshape(-1, 2)


def mask_to_low_res(mask: np.ndarray, embedding: ImageEmbedding, scale: float = 8.0) -> np.ndarray:
    """HxW bool mask of the encoded image -> 256x256 logits laid out like SAM's own low-res output."""
    height, width = embedding.input_size
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    canvas[:height, :width] = cv2.resize(
        mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA
    )
    low = cv2.resize(canvas, (LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE), interpolation=cv2.INTER_AREA)
    return (low * 2 - 1) * scale


def prototype(mask: np.ndarray, embedding: ImageEmbedding) -> np.ndarray | None:
    """Unit 256-d mean SAM feature inside a HxW bool mask of the encoded image; None when too small."""
    height, width = embedding.input_size
    canvas = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    canvas[:height, :width] = cv2.resize(
        mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA
    )
    weights = cv2.resize(canvas, (FEATURE_GRID, FEATURE_GRID), interpolation=cv2.INTER_AREA)
    weights = np.where(weights > 0.5, weights, 0)
    if weights.sum() < 1:
        return None
    features = embedding.features[0].numpy().reshape(256, -1)
    vector = features @ weights.reshape(-1)
    return (vector / (np.linalg.norm(vector) + 1e-8)).astype(np.float32)


def similarity_map(embedding: ImageEmbedding, memory: _Memory) -> np.ndarray:
    """64x64 cosine similarity of every embedding cell to the memory (max over prototypes); pad is -1."""
    features = embedding.features[0].numpy().reshape(256, -1)
    features = features / (np.linalg.norm(features, axis=0, keepdims=True) + 1e-8)
    prototypes = np.stack([memory.anchor, *memory.recent])
    scores = (prototypes @ features).max(axis=0).reshape(FEATURE_GRID, FEATURE_GRID)
    rows = int(np.ceil(embedding.input_size[0] / IMAGE_SIZE * FEATURE_GRID))
    cols = int(np.ceil(embedding.input_size[1] / IMAGE_SIZE * FEATURE_GRID))
    scores[rows:] = -1
    scores[:, cols:] = -1
    return scores


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


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
    """SAM's best answer on one tile."""

    mask: np.ndarray  # HxW bool, frame size
    score: float  # SAM's predicted IoU
    agreement: float  # IoU with the carried mask
    prototype: np.ndarray | None  # 256 float32
    carried_prototype: np.ndarray | None  # 256 float32, of the carried mask on the same embedding


@dataclass
class _PassState:
    """What one propagation pass carries from frame to frame."""

    previous: np.ndarray  # HxWx3 uint8, the last frame handled
    mask: np.ndarray  # HxW bool, its final mask
    present: bool = True
    score: float = 1.0
    frames_since_sam: int = 0
    frames_since_search: int = 0


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

    def _segment_tile(self, embedding: ImageEmbedding, tile: _Tile, carried: np.ndarray) -> _Candidate | None:
        """SAM on one tile prompted by the carried mask; the candidate that agrees best with it."""
        carried_mosaic = tile.mask_to_mosaic(carried)
        box = mask_box(carried_mosaic)
        if box is None:
            return None
        points = interior_points(carried_mosaic, self.config.positive_points)
        low_res = mask_to_low_res(carried_mosaic, embedding)
        with one_thread():
            requests = [(embedding, Prompt(box=box, mask_logits=low_res))]
            single = self.predictor.predict_batch(requests, multimask=False, return_masks=False)
            requests = [(embedding, Prompt(points=points, labels=np.ones(len(points), np.int64), box=box))]
            multi = self.predictor.predict_batch(requests, multimask=True, return_masks=False)
        logits = np.concatenate([single[0].low_res_logits, multi[0].low_res_logits])
        scores = np.concatenate([single[0].scores, multi[0].scores])
        with torch.inference_mode():
            mosaic_logits = upscale_logits(torch.from_numpy(logits)[None], embedding)[0].numpy()
        masks = [tile.logits_to_frame(m, carried.shape) for m in mosaic_logits]
        agreement = np.array([mask_iou(m, carried) for m in masks])
        best = int(np.argmax(agreement + 0.05 * scores))
        in_tile = tile.mask_to_mosaic(masks[best])
        return _Candidate(
            masks[best],
            float(scores[best]),
            float(agreement[best]),
            prototype(in_tile, embedding),
            prototype(carried_mosaic, embedding),
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
        return result.masks[best], float(result.scores[best])

    def _memory_for(self, image: np.ndarray, mask: np.ndarray) -> _Memory:
        """The appearance memory, seeded from the prompt frame laid out like a tracking mosaic."""
        ((embedding, tile),) = self._encode_crops([image], [mask])
        vector = prototype(tile.mask_to_mosaic(mask), embedding)
        if vector is None:
            raise InputError("the prompted object is too small to track (under one SAM feature cell)")
        return _Memory(anchor=vector, areas=[int(mask.sum())])

    # --- lost objects -----------------------------------------------------------------------------

    def _redetect(self, image: np.ndarray, memory: _Memory) -> tuple[np.ndarray, float] | None:
        """Search the whole frame for the remembered object -> (HxW bool mask, score) or None."""
        embedding = self.predictor.encode(image)
        scores = similarity_map(embedding, memory)
        if scores.max() < self.config.same_object:
            return None
        row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
        scale_x = embedding.original_size[1] / embedding.input_size[1]
        scale_y = embedding.original_size[0] / embedding.input_size[0]
        cell = IMAGE_SIZE / FEATURE_GRID
        point = np.array([[(col + 0.5) * cell * scale_x, (row + 0.5) * cell * scale_y]])
        point = np.minimum(point, [[image.shape[1] - 1, image.shape[0] - 1]])
        with one_thread():
            (result,) = self.predictor.predict_batch(
                [(embedding, Prompt(points=point, labels=np.ones(1, np.int64)))], multimask=True
            )
        best = None
        for mask, score in zip(result.masks, result.scores, strict=True):
            vector = prototype(mask, embedding)
            area = int(mask.sum())
            if vector is None or not 0.2 * memory.typical_area <= area <= 5 * memory.typical_area:
                continue
            similarity = memory.similarity(vector)
            log.debug(
                "re-detection candidate: area %d, SAM score %.3f, similarity %.3f", area, score, similarity
            )
            if similarity >= self.config.same_object and (best is None or similarity > best[2]):
                best = (mask, float(score), similarity)
        return None if best is None else (best[0], best[1])

    def _search(self, index: int, frame: np.ndarray, state: _PassState, memory: _Memory) -> FrameResult:
        """A frame while the object is lost: look for it (every ``redetect_every`` frames)."""
        state.frames_since_search += 1
        found = None
        if state.frames_since_search >= self.config.redetect_every:
            state.frames_since_search = 0
            found = self._redetect(frame, memory)
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
        """Keep SAM's mask, fall back to the carried one, or declare the object gone."""
        config = self.config
        if candidate is None:
            return FrameResult(index, carried, state.score, True, "flow")
        similarity = -1.0 if candidate.prototype is None else memory.similarity(candidate.prototype)
        carried_similarity = -1.0
        if candidate.carried_prototype is not None:
            carried_similarity = memory.similarity(candidate.carried_prototype)
        log.debug(
            "frame %d: SAM score %.3f, agreement %.3f, similarity %.3f, carried similarity %.3f",
            index,
            candidate.score,
            candidate.agreement,
            similarity,
            carried_similarity,
        )
        if candidate.agreement >= config.accept_iou and similarity >= config.same_object:
            state.score = candidate.score * candidate.agreement
            if candidate.agreement >= config.memory_iou and candidate.score >= config.memory_score:
                memory.add(candidate.prototype, int(candidate.mask.sum()), config.memory_size)
            return FrameResult(index, candidate.mask, state.score, True, "sam")
        if carried_similarity < config.same_object:
            state.present = False
            return FrameResult(index, np.zeros_like(carried), 0.0, False, "absent")
        state.score *= 0.9
        return FrameResult(index, carried, state.score, True, "flow")

    def _batch(
        self, batch: list[tuple[int, np.ndarray]], state: _PassState, memory: _Memory
    ) -> Iterator[FrameResult]:
        """Frames sharing one encoder pass: predict their crops by chaining flow, encode, then step."""
        config = self.config
        lookups, predicted, previous, mask = [], [], state.previous, state.mask
        for _, frame in batch:
            lookups.append(self.flow.field(previous, frame))
            mask = self.flow.warp(mask, lookups[-1])
            predicted.append(mask)
            previous = frame
        wanted = []
        for position in range(len(batch)):
            due = (state.frames_since_sam + position + 1) % config.sam_every == 0
            if due and predicted[position].sum() >= config.min_area:
                wanted.append(position)
        wanted = wanted[: config.tiles]
        encoded = self._encode_crops([batch[p][1] for p in wanted], [predicted[p] for p in wanted])
        tiles = dict(zip(wanted, encoded, strict=True))
        for position, (index, frame) in enumerate(batch):
            if not state.present:
                result = self._search(index, frame, state, memory)
            else:
                carried = self.flow.warp(state.mask, lookups[position])
                state.frames_since_sam += 1
                if carried.sum() < config.min_area:
                    state.present = False
                    result = FrameResult(index, np.zeros_like(carried), 0.0, False, "absent")
                else:
                    candidate = None
                    if position in tiles:
                        state.frames_since_sam = 0
                        candidate = self._segment_tile(*tiles[position], carried)
                    result = self._judge(index, carried, candidate, state, memory)
            state.previous, state.mask = frame, result.mask
            yield result

    def _pass(
        self, frames: FrameSource, indices: range, mask: np.ndarray, image: np.ndarray, memory: _Memory
    ) -> Iterator[FrameResult]:
        """Propagate from the prompt frame (not yielded) through ``indices``."""
        state = _PassState(previous=image, mask=mask)
        batch: list[tuple[int, np.ndarray]] = []
        frames_per_batch = self.config.tiles * self.config.sam_every
        for index, frame in frames.iterate(indices):
            if not state.present and not batch:
                result = self._search(index, frame, state, memory)
                state.previous, state.mask = frame, result.mask
                yield result
                continue
            batch.append((index, frame))
            if len(batch) == frames_per_batch:
                yield from self._batch(batch, state, memory)
                batch = []
        if batch:
            yield from self._batch(batch, state, memory)

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
        validate_prompt(prompt, frames)
        ((_, image),) = list(frames.iterate(range(prompt.frame, prompt.frame + 1)))
        mask, score = self._initial_mask(image, prompt)
        memory = self._memory_for(image, mask)
        yield FrameResult(prompt.frame, mask, score, True, "prompt")
        yield from self._pass(frames, range(prompt.frame + 1, len(frames)), mask, image, memory)
        yield from self._pass(frames, range(prompt.frame - 1, -1, -1), mask, image, memory)
