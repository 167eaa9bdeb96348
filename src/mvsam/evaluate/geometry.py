"""SfM on a few unposed photos, scored against the dataset's own cameras: ``mvsam eval geometry``.

A subset of a posed scene (every k-th view or k views spread evenly, optionally downscaled) is written as a
plain image folder (``images/`` and, when the scene has ground-truth masks, ``mask/``), so SfM sees
photos without cameras; each feature kind then runs on it from an empty cache. Scores: views registered by
the mapper, by PnP afterwards and not at all; relative rotation errors of the registered views against
the dataset's cameras (frame- and scale-free); seconds.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mvsam.commands.common import write_json_report
from mvsam.errors import InputError
from mvsam.geometry.metrics import relative_rotation_errors
from mvsam.geometry.sfm import FEATURES, SfmSettings, SfmTimings, reconstruct_cameras
from mvsam.io.images import list_images, read_mask_png, read_rgb
from mvsam.io.loaders import load_scene
from mvsam.scene import Scene, View


@dataclass
class GeometryRun:
    """One SfM run on the subset."""

    features: str
    views: int
    registered: int  # by the incremental mapper
    pnp: int  # registered afterwards by PnP
    unregistered: list[str]
    points: int
    rotation_median_deg: float  # NaN with fewer than 2 registered views
    rotation_max_deg: float
    seconds: float
    status: dict[str, str] = field(default_factory=dict)  # view -> registered | pnp | unregistered
    stages: SfmTimings = field(default_factory=SfmTimings)  # seconds per SfM stage
    # median over registered views of 100 * (SfM focal / the dataset's focal at the subset's size - 1)
    focal_error_pct: float = float("nan")
    distortion: list[float] = field(default_factory=list)  # lens distortion SfM kept (first view; [] pinhole)


@dataclass
class GeometryReport:
    scene: str
    indices: list[int]  # views of the original scene in the subset
    size: int | None  # long side of the subset's images (None: original size)
    runs: list[GeometryRun]

    def table(self) -> str:
        size = "full size" if self.size is None else f"{self.size} px"
        lines = [
            f"{self.scene}: {len(self.indices)} views ({size})",
            f"{'features':<9} {'reg':>4} {'pnp':>4} {'none':>4} {'points':>7} {'rot med':>8} {'rot max':>8} "
            f"{'focal %':>8} {'s':>7}  extract / match / verify / map / PnP; lens distortion",
        ]
        for run in self.runs:
            lines.append(
                f"{run.features:<9} {run.registered:>4d} {run.pnp:>4d} {len(run.unregistered):>4d} "
                f"{run.points:>7d} {run.rotation_median_deg:>8.2f} {run.rotation_max_deg:>8.2f} "
                f"{run.focal_error_pct:>+8.2f} {run.seconds:>7.1f}  {run.stages.extraction:.1f} / "
                f"{run.stages.matching:.1f} / {run.stages.verification:.1f} / {run.stages.mapping:.1f} / "
                f"{run.stages.pnp:.1f}; {run.distortion or 'none (pinhole)'}"
            )
        return "\n".join(lines)


def choose_views(count: int, every: int = 1, limit: int | None = None) -> list[int]:
    """Every ``every``-th of ``count`` views, at most ``limit`` of them spread evenly over those."""
    if every < 1 or (limit is not None and limit < 2):
        raise InputError(f"every must be >= 1 and the view limit >= 2, got {every} and {limit}")
    indices = list(range(0, count, every))
    if limit is not None and limit < len(indices):
        picks = np.unique(np.rint(np.linspace(0, len(indices) - 1, limit)).astype(int))
        indices = [indices[i] for i in picks]
    return indices


def _resized(image: np.ndarray, size: int | None, interpolation: int) -> np.ndarray:
    height, width = image.shape[:2]
    if size is None or max(height, width) <= size:
        return image
    scale = size / max(height, width)
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=interpolation)


def write_subset(scene: Scene, data: Path, indices: Sequence[int], size: int | None, out: Path) -> Path:
    """``out/images/`` (and ``out/mask/`` from ``data/mask/``) with the chosen views, long side <= size."""
    masks = list_images(data / "mask") if (data / "mask").is_dir() else []
    (out / "images").mkdir(parents=True, exist_ok=True)
    for index in indices:
        view = scene.views[index]
        image = _resized(read_rgb(view.image_path), size, cv2.INTER_AREA)
        cv2.imwrite(str(out / "images" / view.name), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if len(masks) == len(scene.views):
            mask = _resized(read_mask_png(masks[index]).astype(np.uint8) * 255, size, cv2.INTER_AREA)
            (out / "mask").mkdir(exist_ok=True)
            cv2.imwrite(str(out / "mask" / masks[index].name), np.where(mask > 127, 255, 0).astype(np.uint8))
    return out


def _intrinsics_errors(scene: Scene, reference: dict[str, View]) -> tuple[float, list[float]]:
    """(median % focal error of the registered views against ``reference``'s cameras, by view name, their
    focal scaled to each view's size; the first registered view's distortion, [] for a pinhole)."""
    errors, distortion = [], []
    for view in scene.views:
        if view.camera is None:
            continue
        truth = reference[view.name]
        focal = float(np.mean(np.diag(view.camera.K)[:2]))
        true_focal = float(np.mean(np.diag(truth.camera.K)[:2])) * view.width / truth.width
        errors.append(100.0 * (focal / true_focal - 1.0))
        if not distortion and view.camera.distortion is not None:
            distortion = [round(float(k), 4) for k in view.camera.distortion]
    return (float(np.median(errors)) if errors else float("nan")), distortion


def evaluate_geometry(
    data: str | Path,
    every: int = 1,
    limit: int | None = None,
    size: int | None = 480,
    features: Sequence[str] = FEATURES,
    image_subdir: str | None = None,
    keep: str | Path | None = None,
    progress: bool = True,
) -> GeometryReport:
    """SfM with each feature kind on a subset of the posed scene at ``data``; see the module doc.

    ``keep`` names a folder to keep the subset in (e.g. to segment it later); otherwise it is temporary.
    """
    data = Path(data)
    for kind in features:
        if kind not in FEATURES:
            raise InputError(f"unknown features {kind!r}; choose from {', '.join(FEATURES)}")
    with tempfile.TemporaryDirectory(prefix="mvsam_geometry_eval_") as work:
        reference = load_scene(data, cache_dir=Path(work) / "reference", image_subdir=image_subdir)
        if not reference.has_cameras:
            raise InputError(f"{data} has no cameras to compare with; use a posed scene (DTU, LLFF, ...)")
        indices = choose_views(len(reference.views), every, limit)
        subset = write_subset(reference, data, indices, size, Path(keep) if keep else Path(work) / "subset")
        runs = []
        for kind in features:
            scene = load_scene(subset, format="images", cache_dir=Path(work) / f"cache_{kind}")
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                report = reconstruct_cameras(scene, SfmSettings(features=kind), progress=progress)
            seconds = time.perf_counter() - start
            posed = [i for i, v in enumerate(scene.views) if v.camera is not None]
            errors = np.array([np.nan])
            by_name = {v.name: v for v in reference.views}
            focal_error, distortion = _intrinsics_errors(scene, by_name)
            if len(posed) >= 2:
                errors = relative_rotation_errors(
                    [scene.views[i].camera.world_from_cam for i in posed],
                    [by_name[scene.views[i].name].camera.world_from_cam for i in posed],
                )
            runs.append(
                GeometryRun(
                    features=kind,
                    views=len(scene.views),
                    registered=len(report.registered),
                    pnp=len(report.pnp),
                    unregistered=report.unregistered,
                    points=report.num_points,
                    rotation_median_deg=float(np.median(errors)),
                    rotation_max_deg=float(np.max(errors)),
                    seconds=seconds,
                    status={v.name: report.status(v.name) for v in scene.views},
                    stages=report.seconds,
                    focal_error_pct=focal_error,
                    distortion=distortion,
                )
            )
            shutil.rmtree(Path(work) / f"cache_{kind}", ignore_errors=True)
    return GeometryReport(scene=str(data), indices=indices, size=size, runs=runs)


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "geometry", help="SfM on a few views of a posed scene: registration and rotation errors"
    )
    parser.add_argument("--data", required=True, type=Path, help="a scene with cameras (DTU, LLFF, ...)")
    parser.add_argument("--every", type=int, default=1, help="take every k-th view")
    parser.add_argument("--views", type=int, default=None, help="at most this many views, spread evenly")
    parser.add_argument("--size", type=int, default=480, help="image long side (0: original size)")
    parser.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    parser.add_argument("--image-subdir", default=None, help="image folder of the scene (e.g. images_8)")
    parser.add_argument("--keep", type=Path, default=None, help="write the subset here and keep it")
    parser.add_argument("--json", type=Path, default=Path("geometry_results.json"), help="results file")
    parser.set_defaults(run=run)


def run(args) -> int:
    report = evaluate_geometry(
        args.data,
        every=args.every,
        limit=args.views,
        size=args.size or None,
        features=args.features,
        image_subdir=args.image_subdir,
        keep=args.keep,
    )
    print(report.table())
    for run_ in report.runs:
        for name, status in run_.status.items():
            if status != "registered":
                print(f"{run_.features}: {name} {status}")
    write_json_report(args.json, report)
    return 0
