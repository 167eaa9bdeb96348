"""Render mvsam's bundled demo scene: a tabletop with four objects seen from 8 cameras.

The scene is ray-cast analytically (numpy only), so cameras, depth and instance masks are exact.
Output is the ScanNet-style RGB-D layout mvsam loads::

    color/<i>.jpg  depth/<i>.png (uint16 mm, 0 = no hit)  pose/<i>.txt (4x4 world_from_cam, OpenCV axes)
    intrinsic/intrinsic_color.txt  intrinsic/intrinsic_depth.txt  instance/<i>.png (uint8 object id)
    scene.json (objects and suggested clicks)  README.md

World frame: metres, z up, the table top is the plane z = 0 centred on the origin.
Run: ``python scripts/make_demo_scene.py [--out DIR] [--seed N]``; the same seed gives the same files.
"""

from __future__ import annotations

import argparse
import json
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "src" / "mvsam" / "demo" / "scene"

WIDTH, HEIGHT = 640, 480
FOCAL = 550.0
NUM_VIEWS = 8
ORBIT_RADIUS = 1.0  # metres from the look-at point
ELEVATION_DEG = 30.0
AZIMUTH_SPAN_DEG = 150.0  # views spread evenly over this arc, centred on the -y side of the table
LOOK_AT = np.array([0.0, 0.0, 0.05])
LIGHT_DIR = np.array([0.45, -0.55, 0.75]) / np.linalg.norm([0.45, -0.55, 0.75])  # towards the light
AMBIENT = 0.32
DIFFUSE = 0.85
PIXEL_NOISE_SIGMA = 1.5  # uint8 levels, added after shading
JPEG_QUALITY = 92
EPS = 1e-6
SHADOW_OFFSET = 1e-4

LINEAR_GAMMA = 2.2


def srgb(rgb: tuple[float, float, float]) -> np.ndarray:
    """An sRGB colour in [0, 1] as a linear-light albedo, shape (3,)."""
    return np.asarray(rgb, dtype=np.float64) ** LINEAR_GAMMA


class ValueNoise:
    """Seeded, smooth, tileable 2D value noise (bilinear over a random lattice with smoothstep)."""

    def __init__(self, rng: np.random.Generator, size: int = 256) -> None:
        self.size = size
        self.table = rng.random((size, size))

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Noise in [0, 1] at N lattice coordinates (u, v), shape (N,)."""
        u0, v0 = np.floor(u), np.floor(v)
        fu, fv = u - u0, v - v0
        fu, fv = fu * fu * (3 - 2 * fu), fv * fv * (3 - 2 * fv)
        i0, j0 = u0.astype(np.int64) % self.size, v0.astype(np.int64) % self.size
        i1, j1 = (i0 + 1) % self.size, (j0 + 1) % self.size
        t = self.table
        top = t[j0, i0] * (1 - fu) + t[j0, i1] * fu
        bottom = t[j1, i0] * (1 - fu) + t[j1, i1] * fu
        return top * (1 - fv) + bottom * fv

    def fbm(self, u: np.ndarray, v: np.ndarray, octaves: int = 4) -> np.ndarray:
        """Fractal sum of octaves, normalised to [0, 1], shape (N,)."""
        total, weight, norm = np.zeros_like(u), 1.0, 0.0
        for octave in range(octaves):
            scale = 2.0**octave
            total += weight * self(u * scale + 17.3 * octave, v * scale - 5.1 * octave)
            norm += weight
            weight *= 0.5
        return total / norm


def solve_quadratic(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both real roots (small, large) of a t^2 + b t + c = 0 per ray; NaN where there are none."""
    disc = b * b - 4 * a * c
    ok = (disc >= 0) & (np.abs(a) > 1e-12)
    root = np.sqrt(np.where(ok, disc, 0.0))
    safe_a = np.where(ok, a, 1.0)
    t1, t2 = (-b - root) / (2 * safe_a), (-b + root) / (2 * safe_a)
    small, large = np.minimum(t1, t2), np.maximum(t1, t2)
    return np.where(ok, small, np.nan), np.where(ok, large, np.nan)


def nearest_positive(*candidates: np.ndarray) -> np.ndarray:
    """Per ray, the smallest candidate t above EPS; inf where none (NaN counts as a miss)."""
    stacked = np.stack(candidates)
    stacked = np.where(np.isfinite(stacked) & (stacked > EPS), stacked, np.inf)
    return stacked.min(axis=0)


@dataclass
class Shape(ABC):
    """One analytic surface. Rays are (origins Nx3, directions Nx3, not necessarily unit length)."""

    name: str
    object_id: int  # 0 = background (table, floor, wall)
    casts_shadow: bool = True  # the backdrop does not, or it would shade the room it encloses

    @abstractmethod
    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter t of the first hit per ray, shape (N,), inf where missed."""

    @abstractmethod
    def normal(self, points: np.ndarray) -> np.ndarray:
        """Outward unit normals at Nx3 surface points."""

    @abstractmethod
    def albedo(self, points: np.ndarray) -> np.ndarray:
        """Linear-light albedo at Nx3 surface points, Nx3."""


@dataclass
class Sphere(Shape):
    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    radius: float = 0.1
    color: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        oc = origins - self.center
        a = np.einsum("ij,ij->i", dirs, dirs)
        b = 2 * np.einsum("ij,ij->i", oc, dirs)
        c = np.einsum("ij,ij->i", oc, oc) - self.radius**2
        return nearest_positive(*solve_quadratic(a, b, c))

    def normal(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) / self.radius

    def albedo(self, points: np.ndarray) -> np.ndarray:
        return np.broadcast_to(srgb(self.color), points.shape).copy()


@dataclass
class Box(Shape):
    """A box rotated by ``yaw_deg`` about the world z axis; ``half`` are its half extents in its own frame."""

    center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    half: np.ndarray = field(default_factory=lambda: np.full(3, 0.05))
    yaw_deg: float = 0.0
    color: tuple[float, float, float] = (0.1, 0.2, 0.8)
    checker_color: tuple[float, float, float] | None = None  # second colour of a face checkerboard
    checker_size: float = 0.04

    @property
    def rotation(self) -> np.ndarray:
        """3x3 world_from_box rotation."""
        c, s = np.cos(np.radians(self.yaw_deg)), np.sin(np.radians(self.yaw_deg))
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    def to_local(self, points: np.ndarray) -> np.ndarray:
        return (points - self.center) @ self.rotation

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        o, d = self.to_local(origins), dirs @ self.rotation
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-self.half - o) / d, (self.half - o) / d
        t1, t2 = np.nan_to_num(t1, nan=-np.inf), np.nan_to_num(t2, nan=np.inf)
        t_near = np.minimum(t1, t2).max(axis=1)
        t_far = np.maximum(t1, t2).min(axis=1)
        hit = (t_near <= t_far) & (t_far > EPS)
        t = np.where(t_near > EPS, t_near, t_far)
        return np.where(hit, t, np.inf)

    def normal(self, points: np.ndarray) -> np.ndarray:
        local = self.to_local(points) / self.half
        axis = np.abs(local).argmax(axis=1)
        n = np.zeros_like(points)
        n[np.arange(len(points)), axis] = np.sign(local[np.arange(len(points)), axis])
        return n @ self.rotation.T

    def albedo(self, points: np.ndarray) -> np.ndarray:
        base = np.broadcast_to(srgb(self.color), points.shape).copy()
        if self.checker_color is None:
            return base
        cells = np.floor((self.to_local(points) + self.half) / self.checker_size).astype(np.int64)
        odd = cells.sum(axis=1) % 2 == 1
        base[odd] = srgb(self.checker_color)
        return base


@dataclass
class Cylinder(Shape):
    """A capped cylinder with a vertical axis standing on z = ``bottom``."""

    center_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))
    radius: float = 0.05
    bottom: float = 0.0
    height: float = 0.2
    color: tuple[float, float, float] = (0.9, 0.8, 0.1)

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        ox, oy = origins[:, 0] - self.center_xy[0], origins[:, 1] - self.center_xy[1]
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        small, large = solve_quadratic(
            dx * dx + dy * dy, 2 * (ox * dx + oy * dy), ox * ox + oy * oy - self.radius**2
        )
        top = self.bottom + self.height
        sides = []
        for t in (small, large):
            z = origins[:, 2] + t * dz
            sides.append(np.where((z >= self.bottom) & (z <= top), t, np.nan))
        caps = []
        with np.errstate(divide="ignore", invalid="ignore"):
            for z_cap in (self.bottom, top):
                t = (z_cap - origins[:, 2]) / dz
                inside = (ox + t * dx) ** 2 + (oy + t * dy) ** 2 <= self.radius**2
                caps.append(np.where(inside, t, np.nan))
        return nearest_positive(*sides, *caps)

    def normal(self, points: np.ndarray) -> np.ndarray:
        radial = points[:, :2] - self.center_xy
        n = np.zeros_like(points)
        n[:, :2] = radial / self.radius
        top = self.bottom + self.height
        on_top = np.abs(points[:, 2] - top) < 1e-5
        on_bottom = np.abs(points[:, 2] - self.bottom) < 1e-5
        n[on_top] = (0.0, 0.0, 1.0)
        n[on_bottom] = (0.0, 0.0, -1.0)
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    def albedo(self, points: np.ndarray) -> np.ndarray:
        return np.broadcast_to(srgb(self.color), points.shape).copy()


@dataclass
class Cone(Shape):
    """A solid upright cone: base disc of ``radius`` on z = ``bottom``, apex ``height`` above it."""

    center_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))
    radius: float = 0.07
    bottom: float = 0.0
    height: float = 0.15
    color: tuple[float, float, float] = (0.1, 0.7, 0.2)
    noise: ValueNoise | None = None  # mottles the colour when given

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        apex_z = self.bottom + self.height
        k2 = (self.radius / self.height) ** 2
        ox, oy = origins[:, 0] - self.center_xy[0], origins[:, 1] - self.center_xy[1]
        q = apex_z - origins[:, 2]
        dx, dy, dz = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        a = dx * dx + dy * dy - k2 * dz * dz
        b = 2 * (ox * dx + oy * dy + k2 * q * dz)
        c = ox * ox + oy * oy - k2 * q * q
        sides = []
        for t in solve_quadratic(a, b, c):
            z = origins[:, 2] + t * dz
            sides.append(np.where((z >= self.bottom) & (z <= apex_z), t, np.nan))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.bottom - origins[:, 2]) / dz
            inside = (ox + t * dx) ** 2 + (oy + t * dy) ** 2 <= self.radius**2
        return nearest_positive(*sides, np.where(inside, t, np.nan))

    def normal(self, points: np.ndarray) -> np.ndarray:
        apex_z = self.bottom + self.height
        k2 = (self.radius / self.height) ** 2
        n = np.zeros_like(points)
        n[:, :2] = points[:, :2] - self.center_xy
        n[:, 2] = k2 * (apex_z - points[:, 2])
        n[np.abs(points[:, 2] - self.bottom) < 1e-5] = (0.0, 0.0, -1.0)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    def albedo(self, points: np.ndarray) -> np.ndarray:
        base = np.broadcast_to(srgb(self.color), points.shape).copy()
        if self.noise is not None:
            mottle = self.noise.fbm(points[:, 0] * 60, points[:, 2] * 60 + points[:, 1] * 60, octaves=3)
            base *= (0.75 + 0.5 * mottle)[:, None]
        return base


@dataclass
class Table(Box):
    """The table top: a wood-textured axis-aligned slab whose upper face is z = 0."""

    noise: ValueNoise | None = None

    def albedo(self, points: np.ndarray) -> np.ndarray:
        x, y = points[:, 0], points[:, 1]
        plank_width = 0.14
        plank = np.floor((y + self.half[1]) / plank_width)
        grain_noise = self.noise.fbm(x * 3.0 + plank * 31.0, y * 25.0, octaves=4)
        rings = 0.5 + 0.5 * np.sin((y * 90.0 + 9.0 * grain_noise + plank * 2.3) * np.pi)
        light, dark = srgb((0.72, 0.52, 0.32)), srgb((0.46, 0.29, 0.15))
        mix = np.clip(0.25 + 0.6 * rings**3 + 0.3 * (grain_noise - 0.5), 0, 1)[:, None]
        colour = light * (1 - mix) + dark * mix
        colour *= (0.9 + 0.2 * self.noise(x * 4.0 + 100.0, plank * 7.0))[:, None]  # plank-to-plank tint
        seam = np.abs(((y + self.half[1]) / plank_width) - np.round((y + self.half[1]) / plank_width))
        colour[seam * plank_width < 0.0015] *= 0.45
        sides = points[:, 2] < -1e-5
        colour[sides] = srgb((0.38, 0.24, 0.13))
        return colour


@dataclass
class Floor(Shape):
    """The horizontal plane z = ``height``: grey tiles with grout."""

    height: float = -0.75
    tile: float = 0.4

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.height - origins[:, 2]) / dirs[:, 2]
        return nearest_positive(t)

    def normal(self, points: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.array([0.0, 0.0, 1.0]), points.shape).copy()

    def albedo(self, points: np.ndarray) -> np.ndarray:
        cells = np.floor(points[:, :2] / self.tile).astype(np.int64)
        colour = np.where(
            (cells.sum(axis=1) % 2 == 0)[:, None], srgb((0.62, 0.62, 0.6)), srgb((0.5, 0.5, 0.49))
        )
        grout = np.abs(points[:, :2] / self.tile - np.round(points[:, :2] / self.tile)).min(axis=1)
        colour[grout * self.tile < 0.006] = srgb((0.3, 0.3, 0.3))
        return colour


@dataclass
class Wall(Shape):
    """A round backdrop seen from inside: a vertical cylinder of ``radius`` about z, up to ``top``."""

    radius: float = 3.0
    top: float = 2.5

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        ox, oy, dx, dy = origins[:, 0], origins[:, 1], dirs[:, 0], dirs[:, 1]
        _, large = solve_quadratic(
            dx * dx + dy * dy, 2 * (ox * dx + oy * dy), ox * ox + oy * oy - self.radius**2
        )
        z = origins[:, 2] + large * dirs[:, 2]
        return nearest_positive(np.where(z <= self.top, large, np.nan))

    def normal(self, points: np.ndarray) -> np.ndarray:
        n = np.zeros_like(points)
        n[:, :2] = -points[:, :2] / self.radius
        return n

    def albedo(self, points: np.ndarray) -> np.ndarray:
        s = np.clip((points[:, 2] + 0.75) / 3.0, 0, 1)[:, None]
        return srgb((0.85, 0.82, 0.76)) * (1 - s) + srgb((0.55, 0.66, 0.8)) * s


def build_scene(seed: int) -> list[Shape]:
    """The fixed tabletop: background surfaces (id 0) and four objects (ids 1..4)."""
    rng = np.random.default_rng(seed)
    noise = ValueNoise(rng)
    return [
        Table("table", 0, center=np.array([0.0, 0.0, -0.02]), half=np.array([0.5, 0.36, 0.02]), noise=noise),
        Floor("floor", 0, casts_shadow=False),
        Wall("wall", 0, casts_shadow=False),
        Sphere("red sphere", 1, center=np.array([-0.17, 0.04, 0.09]), radius=0.09, color=(0.82, 0.1, 0.08)),
        Box(
            "blue box",
            2,
            center=np.array([0.13, 0.13, 0.075]),
            half=np.array([0.085, 0.06, 0.075]),
            yaw_deg=25.0,
            color=(0.1, 0.22, 0.72),
            checker_color=(0.2, 0.4, 0.92),
        ),
        Cylinder(
            "yellow cylinder",
            3,
            center_xy=np.array([0.17, -0.11]),
            radius=0.05,
            height=0.2,
            color=(0.95, 0.78, 0.1),
        ),
        Cone(
            "green cone",
            4,
            center_xy=np.array([-0.05, -0.16]),
            radius=0.065,
            height=0.16,
            color=(0.15, 0.65, 0.2),
            noise=noise,
        ),
    ]


@dataclass
class RayHits:
    """First hits of N rays: ray parameter t (inf = miss) and index into the shape list (-1 = miss)."""

    t: np.ndarray  # N float64
    shape_index: np.ndarray  # N int64


def cast(shapes: list[Shape], origins: np.ndarray, dirs: np.ndarray) -> RayHits:
    """Nearest hit of each ray against all shapes."""
    ts = np.stack([shape.intersect(origins, dirs) for shape in shapes])
    index = ts.argmin(axis=0)
    t = ts[index, np.arange(len(dirs))]
    return RayHits(t=t, shape_index=np.where(np.isfinite(t), index, -1))


def shade(shapes: list[Shape], origins: np.ndarray, dirs: np.ndarray, hits: RayHits) -> np.ndarray:
    """Linear-light radiance per ray, Nx3: Lambertian, one directional light, hard shadows, ambient."""
    radiance = np.zeros((len(dirs), 3))
    hit = hits.shape_index >= 0
    points = origins[hit] + hits.t[hit, None] * dirs[hit]
    normals = np.zeros_like(points)
    albedo = np.zeros_like(points)
    for index, shape in enumerate(shapes):
        rows = hits.shape_index[hit] == index
        if rows.any():
            normals[rows] = shape.normal(points[rows])
            albedo[rows] = shape.albedo(points[rows])
    # Face normals towards the viewer so back-facing hits (never expected) do not go black.
    flip = np.einsum("ij,ij->i", normals, dirs[hit]) > 0
    normals[flip] *= -1
    lambert = np.clip(normals @ LIGHT_DIR, 0, None)
    lit = lambert > 0
    shadow_origins = points[lit] + SHADOW_OFFSET * normals[lit]
    shadow_dirs = np.broadcast_to(LIGHT_DIR, shadow_origins.shape)
    occluded = np.zeros(len(points), dtype=bool)
    casters = [shape for shape in shapes if shape.casts_shadow]
    occluded[lit] = np.isfinite(cast(casters, shadow_origins, shadow_dirs).t)
    lambert[occluded] = 0.0
    radiance[hit] = albedo * (AMBIENT + DIFFUSE * lambert)[:, None]
    return radiance


@dataclass
class DemoCamera:
    """Pinhole camera of one demo view."""

    K: np.ndarray  # 3x3
    world_from_cam: np.ndarray  # 4x4, OpenCV axes (x right, y down, z forward)


def orbit_cameras() -> list[DemoCamera]:
    """NUM_VIEWS cameras on an arc at ELEVATION_DEG, looking at LOOK_AT, world z up."""
    K = np.array([[FOCAL, 0.0, (WIDTH - 1) / 2], [0.0, FOCAL, (HEIGHT - 1) / 2], [0.0, 0.0, 1.0]])
    elevation = np.radians(ELEVATION_DEG)
    cameras = []
    for azimuth_deg in np.linspace(-90 - AZIMUTH_SPAN_DEG / 2, -90 + AZIMUTH_SPAN_DEG / 2, NUM_VIEWS):
        azimuth = np.radians(azimuth_deg)
        offset = np.array(
            [np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)]
        )
        center = LOOK_AT + ORBIT_RADIUS * offset
        forward = -offset
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        world_from_cam = np.eye(4)
        world_from_cam[:3, :3] = np.stack([right, down, forward], axis=1)
        world_from_cam[:3, 3] = center
        cameras.append(DemoCamera(K=K, world_from_cam=world_from_cam))
    return cameras


def camera_rays(camera: DemoCamera, offset_x: float, offset_y: float) -> tuple[np.ndarray, np.ndarray]:
    """World rays through every pixel centre shifted by (offset_x, offset_y) pixels, row-major.

    Directions are scaled so their camera-frame z is 1: the hit parameter t is then the depth.
    Returns (HW x 3 origins, HW x 3 directions).
    """
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    pixels = np.stack([xs.ravel() + offset_x, ys.ravel() + offset_y, np.ones(WIDTH * HEIGHT)], axis=1)
    dirs_cam = pixels @ np.linalg.inv(camera.K).T
    dirs = dirs_cam @ camera.world_from_cam[:3, :3].T
    origins = np.broadcast_to(camera.world_from_cam[:3, 3], dirs.shape)
    return origins, dirs


@dataclass
class RenderedView:
    rgb: np.ndarray  # HxWx3 uint8
    depth_mm: np.ndarray  # HxW uint16, camera z in millimetres, 0 = no hit
    instance: np.ndarray  # HxW uint8 object id, 0 = background


def render_view(shapes: list[Shape], camera: DemoCamera, rng: np.random.Generator) -> RenderedView:
    """Colour from 2x2 supersampling; depth and instance id from the ray through each pixel centre."""
    radiance = np.zeros((WIDTH * HEIGHT, 3))
    for offset_y in (-0.25, 0.25):
        for offset_x in (-0.25, 0.25):
            origins, dirs = camera_rays(camera, offset_x, offset_y)
            radiance += shade(shapes, origins, dirs, cast(shapes, origins, dirs))
    radiance /= 4
    display = 255.0 * np.clip(radiance, 0, 1) ** (1 / LINEAR_GAMMA)
    display += rng.normal(0.0, PIXEL_NOISE_SIGMA, display.shape)
    rgb = np.clip(np.round(display), 0, 255).astype(np.uint8).reshape(HEIGHT, WIDTH, 3)

    origins, dirs = camera_rays(camera, 0.0, 0.0)
    hits = cast(shapes, origins, dirs)
    depth_mm = np.round(hits.t * 1000.0)
    depth_mm = np.where(np.isfinite(depth_mm) & (depth_mm <= np.iinfo(np.uint16).max), depth_mm, 0)
    ids = np.array([shape.object_id for shape in shapes] + [0], dtype=np.uint8)  # index -1 -> 0
    instance = ids[hits.shape_index].reshape(HEIGHT, WIDTH)
    return RenderedView(
        rgb=rgb, depth_mm=depth_mm.astype(np.uint16).reshape(HEIGHT, WIDTH), instance=instance
    )


def suggested_click(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) pixel to click an object: its mask centroid, or the mask pixel nearest to it if outside."""
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean(), ys.mean()
    x, y = int(round(cx)), int(round(cy))
    if not mask[y, x]:
        nearest = np.argmin((xs - cx) ** 2 + (ys - cy) ** 2)
        x, y = int(xs[nearest]), int(ys[nearest])
    return x, y


def matrix_text(matrix: np.ndarray) -> str:
    return "\n".join(" ".join(f"{value:.9f}" for value in row) for row in matrix) + "\n"


def write_readme(out: Path, objects: list[dict], seed: int) -> None:
    rows = "\n".join(
        f"| {o['id']} | {o['name']} | {tuple(o['color_rgb'])} | ({o['click']['x']}, {o['click']['y']}) |"
        for o in objects
    )
    text = f"""# mvsam demo scene

A small synthetic tabletop rendered by the mvsam project for `mvsam demo` and for tests: a wood-textured table
with four objects, a tiled floor and a round backdrop, seen by {NUM_VIEWS} cameras with exact poses and depth.

**Licence:** CC0 1.0 (public domain dedication). Made by the mvsam project; no third-party data is included.

## How it was made

`scripts/make_demo_scene.py --seed {seed}` ray-casts analytic shapes with numpy: Lambertian shading with one
directional light plus ambient, hard shadows from a shadow ray, 2x2 supersampling, Gaussian pixel noise
(sigma {PIXEL_NOISE_SIGMA} levels). Depth and instance ids come from the ray through each pixel centre, so
they are exact (depth rounded to 1 mm). Running the script again with the same seed reproduces the files.

Cameras: {WIDTH}x{HEIGHT}, fx = fy = {FOCAL:g}, principal point at the image centre, on an arc of radius
{ORBIT_RADIUS:g} m at {ELEVATION_DEG:g} degrees elevation spanning {AZIMUTH_SPAN_DEG:g} degrees of azimuth,
all looking at {LOOK_AT.tolist()} (just above the table centre). World frame: metres, z up, table top at
z = 0.

## Layout (ScanNet-style RGB-D)

- `color/<i>.jpg`: RGB, JPEG quality {JPEG_QUALITY}, i = 0..{NUM_VIEWS - 1}
- `depth/<i>.png`: uint16 camera-frame z in millimetres, 0 = no hit
- `pose/<i>.txt`: 4x4 camera-to-world matrix, OpenCV camera axes (x right, y down, z forward)
- `intrinsic/intrinsic_color.txt`, `intrinsic/intrinsic_depth.txt`: 4x4 with K in the top-left 3x3
  (pixel (0, 0) is the centre of the top-left pixel)
- `instance/<i>.png`: uint8 ground-truth object id per pixel, 0 = background (table, floor, wall)
- `scene.json`: the objects and suggested clicks, machine-readable

## Objects and suggested clicks

A suggested click is the object's mask centroid in view 0 (x = column, y = row). The demo clicks the red
sphere.

| id | object | colour (sRGB 0-1) | click in view 0 (x, y) |
|---|---|---|---|
{rows}
"""
    (out / "README.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (replaced)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    shapes = build_scene(args.seed)
    cameras = orbit_cameras()
    if args.out.exists():
        shutil.rmtree(args.out)
    for sub in ("color", "depth", "pose", "intrinsic", "instance"):
        (args.out / sub).mkdir(parents=True)
    K4 = np.eye(4)
    K4[:3, :3] = cameras[0].K
    for name in ("intrinsic_color.txt", "intrinsic_depth.txt"):
        (args.out / "intrinsic" / name).write_text(matrix_text(K4))

    instances = []
    for index, camera in enumerate(tqdm(cameras, desc="rendering views")):
        view = render_view(shapes, camera, np.random.default_rng([args.seed, index]))
        Image.fromarray(view.rgb).save(args.out / "color" / f"{index}.jpg", quality=JPEG_QUALITY)
        Image.fromarray(view.depth_mm).save(args.out / "depth" / f"{index}.png")
        Image.fromarray(view.instance).save(args.out / "instance" / f"{index}.png")
        (args.out / "pose" / f"{index}.txt").write_text(matrix_text(camera.world_from_cam))
        instances.append(view.instance)

    objects = []
    for shape in shapes:
        if shape.object_id == 0:
            continue
        x, y = suggested_click(instances[0] == shape.object_id)
        objects.append(
            {
                "id": shape.object_id,
                "name": shape.name,
                "color_rgb": [float(c) for c in shape.color],
                "click": {"view": "0", "x": x, "y": y},
                "pixels_per_view": [int((ids == shape.object_id).sum()) for ids in instances],
            }
        )
    metadata = {
        "name": "mvsam demo tabletop",
        "license": "CC0-1.0",
        "generator": f"scripts/make_demo_scene.py --seed {args.seed}",
        "num_views": NUM_VIEWS,
        "width": WIDTH,
        "height": HEIGHT,
        "depth_scale": 1000.0,
        "demo_object_id": 1,
        "objects": objects,
    }
    (args.out / "scene.json").write_text(json.dumps(metadata, indent=2) + "\n")
    write_readme(args.out, objects, args.seed)


if __name__ == "__main__":
    main()
