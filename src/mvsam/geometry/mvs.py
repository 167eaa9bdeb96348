"""Dense depth by plane-sweep multi-view stereo on the CPU (numpy + OpenCV).

Per reference view: pick neighbour views, sweep fronto-parallel planes sampled uniformly in inverse depth,
warp each neighbour onto every plane with a homography (OpenCV ``warpPerspective``), score with windowed
NCC (box filters), keep the mean of the best-K neighbour costs (occlusion), winner-take-all with parabola
refinement.
Then a geometric consistency check across views turns raw depths into depth + confidence. Everything runs at
a working resolution (long side ``MvsSettings.resolution``); ``upsample_depth`` brings results to full size.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
from tqdm import tqdm

from mvsam.scene import Camera, Scene

log = logging.getLogger(__name__)


@dataclass
class MvsSettings:
    """Plane-sweep knobs; every field takes part in the cache key."""

    # 384 px / 64 planes: chosen on the odd DTU scan24 views (warped-mask IoU 0.994 vs 0.995 at 512 px / 96,
    # 2.6x faster), DTU segmentation unchanged on the even reference views (README, "The cold path")
    resolution: int = 384  # long side of the working images, pixels
    num_neighbors: int = 4
    num_planes: int = 64
    window: int = 7  # NCC window side, odd
    best_k: int = 2  # mean of the best K neighbour costs per plane
    cost_smoothing: int = 3  # box filter side on each cost slice, 1 = off
    max_cost: float = 0.5  # 1 - NCC above this is no match
    min_texture: float = 0.01  # NCC needs local intensity std (0..1 scale) above this
    consistency_depth: float = 0.01  # relative depth error allowed between views
    consistency_pixels: float = 1.0  # forward-backward reprojection error allowed, working pixels
    min_consistent: int = 2  # neighbours that must agree for a pixel to be kept

    def validate(self) -> None:
        if self.resolution < 32:
            raise ValueError(f"MvsSettings.resolution must be >= 32, got {self.resolution}")
        if self.num_neighbors < 1 or not 1 <= self.best_k <= self.num_neighbors:
            raise ValueError(
                f"MvsSettings needs num_neighbors >= 1 and 1 <= best_k <= num_neighbors, got "
                f"{self.num_neighbors} and {self.best_k}"
            )
        if self.num_planes < 3:
            raise ValueError(f"MvsSettings.num_planes must be >= 3, got {self.num_planes}")
        if self.window < 3 or self.window % 2 == 0 or self.cost_smoothing < 1 or self.cost_smoothing % 2 == 0:
            raise ValueError("MvsSettings.window must be odd >= 3 and cost_smoothing odd >= 1")
        if not 1 <= self.min_consistent <= self.num_neighbors:
            raise ValueError(f"MvsSettings.min_consistent must be in 1..{self.num_neighbors}")
        if self.consistency_depth <= 0 or self.consistency_pixels <= 0:
            raise ValueError("MvsSettings consistency thresholds must be positive")


@dataclass
class WorkingView:
    """One view at the working resolution: Hw x Ww float32 gray image in [0, 1] and scaled camera."""

    gray: np.ndarray
    camera: Camera


@dataclass
class RawDepth:
    """Plane-sweep result of one view at working resolution (Hw x Ww float32, 0 = no match)."""

    depth: np.ndarray
    cost: np.ndarray  # best-K mean of 1 - NCC at the chosen depth
    neighbors: list[int]


@dataclass
class DepthResult:
    """Filtered depth of one view at working resolution; ``camera`` is the working-resolution camera."""

    depth: np.ndarray  # Hw x Ww float32, 0 = unknown
    confidence: np.ndarray  # Hw x Ww float32 in [0, 1]
    camera: Camera
    neighbors: list[int]


def working_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(w, h) with the long side at most ``resolution``, aspect kept."""
    scale = min(1.0, resolution / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_camera(camera: Camera, width: int, height: int) -> Camera:
    """The same camera for the image resized to width x height (pixel centres at integers)."""
    sx, sy = width / camera.width, height / camera.height
    scale = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    return Camera(K=scale @ camera.K, world_from_cam=camera.world_from_cam, width=width, height=height)


def load_working_view(image: np.ndarray, camera: Camera, resolution: int) -> WorkingView:
    """HxWx3 uint8 RGB -> working-resolution gray float image and matching camera."""
    width, height = working_size(camera.width, camera.height, resolution)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if (width, height) != (camera.width, camera.height):
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    return WorkingView(gray=gray.astype(np.float32) / 255.0, camera=scale_camera(camera, width, height))


def select_neighbors(scene: Scene, index: int, count: int) -> list[int]:
    """Best ``count`` neighbour views of one view, by triangulation angle of shared sparse points.

    Score per shared point follows the usual MVS view-selection prior: best near 5 degrees, falling off
    quickly below (tiny baseline) and slowly above (large viewpoint change). Without sparse points, views
    whose optical axes are within 60 degrees are ranked by centre distance.
    """
    ref = scene.views[index].camera
    candidates = [i for i, v in enumerate(scene.views) if i != index and v.camera is not None]
    if ref is None or not candidates:
        return []
    scores = {}
    sparse = scene.sparse
    if sparse is not None and len(sparse.xyz):
        seen_ref = np.zeros(len(sparse.xyz), dtype=bool)
        seen_ref[sparse.track_point[sparse.track_view == index]] = True
        for i in candidates:
            shared = np.zeros(len(sparse.xyz), dtype=bool)
            shared[sparse.track_point[sparse.track_view == i]] = True
            points = sparse.xyz[shared & seen_ref]
            if len(points) == 0:
                continue
            ray_ref = points - ref.center
            ray_src = points - scene.views[i].camera.center
            cosine = np.sum(ray_ref * ray_src, axis=1) / (
                np.linalg.norm(ray_ref, axis=1) * np.linalg.norm(ray_src, axis=1) + 1e-12
            )
            angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
            sigma = np.where(angle <= 5.0, 1.0, 10.0)
            scores[i] = float(np.sum(np.exp(-((angle - 5.0) ** 2) / (2 * sigma**2))))
    if len(scores) < count:
        axis_ref = ref.world_from_cam[:3, 2]
        for i in candidates:
            if i in scores:
                continue
            other = scene.views[i].camera
            if float(axis_ref @ other.world_from_cam[:3, 2]) < 0.5:
                continue
            scores[i] = -1e-6 * float(np.linalg.norm(other.center - ref.center))
    ranked = sorted(scores, key=lambda i: -scores[i])
    return ranked[:count]


def depth_range(scene: Scene, index: int, neighbors: list[int]) -> tuple[float, float]:
    """(near, far) camera-z range of one view: sparse-point percentiles, else the loader's range, else a
    wide bracket around where the optical axes of the view and its neighbours meet."""
    camera = scene.views[index].camera
    sparse = scene.sparse
    depths = np.empty(0)
    if sparse is not None and len(sparse.xyz):
        seen = np.unique(sparse.track_point[sparse.track_view == index])
        points = sparse.xyz[seen] if len(seen) >= 10 else sparse.xyz
        xy, z = camera.project(points)
        inside = (z > 0) & (xy[:, 0] > -0.5) & (xy[:, 1] > -0.5)
        inside &= (xy[:, 0] < camera.width - 0.5) & (xy[:, 1] < camera.height - 0.5)
        depths = z[inside]
    if len(depths) >= 5:
        near, far = np.percentile(depths, [1.0, 99.0])
        return float(near) * 0.8, float(far) * 1.25
    if scene.views[index].depth_range is not None:
        return scene.views[index].depth_range
    # Closest approach of the two optical axes, as a depth along the reference axis.
    axis = camera.world_from_cam[:3, 2]
    guesses = []
    for i in neighbors:
        other = scene.views[i].camera
        axis_o, offset = other.world_from_cam[:3, 2], other.center - camera.center
        a, b, c = axis @ axis, axis @ axis_o, axis_o @ axis_o
        denominator = a * c - b * b
        if denominator > 1e-9:
            s = (c * (axis @ offset) - b * (axis_o @ offset)) / denominator
            if s > 0:
                guesses.append(s)
    if not guesses:
        raise ValueError(
            f"cannot bound the depth of view {scene.views[index].name}: no sparse points and no converging "
            "neighbour views"
        )
    return 0.3 * min(guesses), 3.0 * max(guesses)


def _box(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over a size x size window of an H x W float32 image (border replicated)."""
    return cv2.blur(image, (size, size), borderType=cv2.BORDER_REPLICATE)


def plane_sweep(
    ref: WorkingView, sources: list[WorkingView], near: float, far: float, settings: MvsSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (Hw x Ww float32, 0 = no match) and its best-K NCC cost of one reference view.

    Each plane warp is the homography H = K_s (R + t n^T / d) K_r^-1 (src_from_ref = [R | t], n = (0, 0, 1)),
    applied with OpenCV's SIMD ``warpPerspective``; pixels mapped outside a source view get cost 2 there.
    """
    height, width = ref.gray.shape
    window = settings.window
    inverse = np.linspace(1.0 / near, 1.0 / far, settings.num_planes)
    ref_mean = _box(ref.gray, window)
    ref_std = np.sqrt(np.maximum(_box(ref.gray * ref.gray, window) - ref_mean * ref_mean, 0.0))
    ref_std_eps = ref_std + np.float32(1e-3)
    k_ref_inv = np.linalg.inv(ref.camera.K)
    homographies = []
    for source in sources:
        src_from_ref = source.camera.cam_from_world @ ref.camera.world_from_cam
        rotation, translation = src_from_ref[:3, :3], src_from_ref[:3, 3]
        homographies.append(
            [source.camera.K @ (rotation + np.outer(translation, [0.0, 0.0, q])) @ k_ref_inv for q in inverse]
        )
    volume = np.empty((settings.num_planes, height, width), dtype=np.float32)
    cost_min = np.full((height, width), np.inf, dtype=np.float32)
    index = np.zeros((height, width), dtype=np.int64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    nearest = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    for plane in range(settings.num_planes):
        best = [np.full((height, width), 2.0, dtype=np.float32) for _ in range(settings.best_k)]
        for source, plane_homographies in zip(sources, homographies, strict=True):
            homography = plane_homographies[plane]
            warped = cv2.warpPerspective(
                source.gray, homography, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE
            )
            inside = cv2.warpPerspective(
                np.ones_like(source.gray, dtype=np.uint8),
                homography,
                (width, height),
                flags=nearest,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            src_mean = _box(warped, window)
            src_var = _box(warped * warped, window) - src_mean * src_mean
            covariance = _box(warped * ref.gray, window) - src_mean * ref_mean
            np.maximum(src_var, 1e-6, out=src_var)
            cost = 1.0 - covariance / (np.sqrt(src_var) * ref_std_eps)
            np.clip(cost, 0.0, 2.0, out=cost)
            np.putmask(cost, inside == 0, 2.0)
            for k in range(settings.best_k):  # insert into the sorted K smallest costs
                smaller = np.minimum(best[k], cost)
                np.maximum(best[k], cost, out=cost)
                best[k] = smaller
        slice_cost = sum(best[1:], best[0]) / settings.best_k
        if settings.cost_smoothing > 1:
            slice_cost = _box(slice_cost, settings.cost_smoothing)
        volume[plane] = slice_cost
        better = slice_cost < cost_min
        cost_min[better] = slice_cost[better]
        index[better] = plane
    inner = np.clip(index, 1, settings.num_planes - 2)
    rows, cols = np.mgrid[0:height, 0:width]
    c0, c1, c2 = volume[inner - 1, rows, cols], volume[inner, rows, cols], volume[inner + 1, rows, cols]
    cost = cost_min
    curvature = c0 - 2 * c1 + c2
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature > 1e-6, 0.5 * (c0 - c2) / curvature, 0.0)
    inverse_depth = inverse[index] + np.clip(offset, -0.5, 0.5) * (inverse[1] - inverse[0])
    valid = (index > 0) & (index < settings.num_planes - 1) & (cost < settings.max_cost)
    valid &= (ref_std > settings.min_texture) & (inverse_depth > 0)
    depth = np.where(valid, 1.0 / np.where(valid, inverse_depth, 1.0), 0.0)
    return depth.astype(np.float32), cost.astype(np.float32)


def consistency_filter(
    views: list[WorkingView], raw: list[RawDepth | None], settings: MvsSettings
) -> list[DepthResult | None]:
    """Keep pixels whose depth agrees with at least ``min_consistent`` neighbours' depths.

    For a pixel with depth d in view r: lift to 3D, project into neighbour s, read s's depth there (nearest),
    lift that back and project into r. Consistent when the round trip lands within ``consistency_pixels`` and
    its depth within ``consistency_depth`` (relative) of d. Confidence = consistent share x clipped NCC.
    """
    results: list[DepthResult | None] = []
    for index, entry in enumerate(raw):
        if entry is None:
            results.append(None)
            continue
        ref = views[index].camera
        height, width = entry.depth.shape
        ys, xs = np.nonzero(entry.depth > 0)
        depth = entry.depth[ys, xs].astype(np.float64)
        points = ref.unproject(np.stack([xs, ys], axis=1), depth)
        agree = np.zeros(len(depth), dtype=np.int32)
        for other_index in entry.neighbors:
            other = raw[other_index]
            if other is None:
                continue
            camera = views[other_index].camera
            xy, _ = camera.project(points)
            col, row = np.rint(xy[:, 0]), np.rint(xy[:, 1])
            inside = (col >= 0) & (row >= 0) & (col < camera.width) & (row < camera.height)
            col_i = np.where(inside, col, 0).astype(np.int64)
            row_i = np.where(inside, row, 0).astype(np.int64)
            other_depth = other.depth[row_i, col_i].astype(np.float64)
            inside &= other_depth > 0
            back_points = camera.unproject(np.stack([col_i, row_i], axis=1), other_depth)
            back_xy, back_z = ref.project(back_points)
            error = np.hypot(back_xy[:, 0] - xs, back_xy[:, 1] - ys)
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.abs(back_z - depth) / depth
            agree += inside & (error < settings.consistency_pixels) & (relative < settings.consistency_depth)
        keep = agree >= settings.min_consistent
        filtered = np.zeros((height, width), dtype=np.float32)
        confidence = np.zeros((height, width), dtype=np.float32)
        filtered[ys[keep], xs[keep]] = depth[keep]
        share = agree[keep] / max(1, len(entry.neighbors))
        score = np.clip(1.0 - entry.cost[ys[keep], xs[keep]], 0.0, 1.0)
        confidence[ys[keep], xs[keep]] = share * score
        results.append(DepthResult(filtered, confidence, ref, entry.neighbors))
    return results


def compute_mvs_depth(
    scene: Scene,
    settings: MvsSettings | None = None,
    indices: list[int] | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> list[DepthResult | None]:
    """Plane-sweep depth of the views in ``indices`` (default: all with a camera), working resolution.

    Returns one entry per scene view (None where not computed). Neighbours are needed for each computed
    view; views without a camera are skipped. Raises ValueError when fewer than 2 views have cameras.
    ``workers``: views swept in parallel threads (default :func:`default_workers`); results do not
    depend on it.
    """
    settings = settings or MvsSettings()
    settings.validate()
    posed = [i for i, v in enumerate(scene.views) if v.camera is not None]
    if len(posed) < 2:
        raise ValueError(
            f"multi-view stereo needs at least 2 views with cameras, {scene.root} has {len(posed)}"
        )
    wanted = posed if indices is None else [i for i in indices if scene.views[i].camera is not None]
    neighbors = {i: select_neighbors(scene, i, settings.num_neighbors) for i in wanted}
    needed = sorted(set(wanted) | {j for i in wanted for j in neighbors[i]})
    views: list[WorkingView | None] = [None] * len(scene.views)
    for i in needed:
        views[i] = load_working_view(scene.views[i].load_image(), scene.views[i].camera, settings.resolution)
    raw: list[RawDepth | None] = [None] * len(scene.views)
    for i in wanted:
        if not neighbors[i]:
            log.warning("view %s has no usable neighbour view; no depth", scene.views[i].name)
    swept = [i for i in wanted if neighbors[i]]
    ranges = {i: depth_range(scene, i, neighbors[i]) for i in swept}

    def sweep(i: int) -> RawDepth:
        near, far = ranges[i]
        depth, cost = plane_sweep(views[i], [views[j] for j in neighbors[i]], near, far, settings)
        return RawDepth(depth, cost, neighbors[i])

    # Views are independent and numpy/OpenCV release the GIL, so threads fill the cores that numpy's
    # single-threaded element-wise work leaves idle; each view's result is the same as when run alone.
    with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
        done = tqdm(total=len(swept), desc="plane-sweep depth", unit="view", disable=not progress)
        for i, result in zip(swept, pool.map(sweep, swept), strict=True):
            raw[i] = result
            done.update(1)
        done.close()
    return consistency_filter(views, raw, settings)


def default_workers() -> int:
    """Views swept at once: the usable cores, at most 4 (each holds a ~25 MB cost volume at 384 px)."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def upsample_depth(
    depth: np.ndarray, confidence: np.ndarray, width: int, height: int, edge_ratio: float = 1.02
) -> tuple[np.ndarray, np.ndarray]:
    """Working-resolution depth/confidence -> width x height.

    Bilinear where the 3x3 low-res neighbourhood is valid and smooth (max/min depth < ``edge_ratio``),
    nearest elsewhere, so depth edges and holes never blend foreground with background.
    """
    if depth.shape == (height, width):
        return depth.astype(np.float32), confidence.astype(np.float32)
    size = (width, height)
    nearest = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
    bilinear = cv2.resize(depth, size, interpolation=cv2.INTER_LINEAR)
    kernel = np.ones((3, 3), np.uint8)
    high = cv2.dilate(depth, kernel)
    low = cv2.erode(depth, kernel)  # 0 when any neighbour is a hole
    smooth = (low > 0) & (high < edge_ratio * low)
    smooth_full = cv2.resize(smooth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    out = np.where(smooth_full, bilinear, nearest).astype(np.float32)
    out_confidence = cv2.resize(confidence, size, interpolation=cv2.INTER_NEAREST).astype(np.float32)
    out_confidence[out <= 0] = 0.0
    return out, out_confidence
