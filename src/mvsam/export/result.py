"""One reader for every result folder (``segment``, ``track``, ``auto``), and what the writers record for it.

Layouts read, by what the folder holds:

- ``single``: ``masks/<stem>.png`` (0/255), one object (``segment``, ``track``);
- ``per_object``: ``masks/<object id>/<stem>.png`` (multi-object ``segment`` / ``track``);
- ``ids``: ``ids/<stem>.png``, pixel value = object id, 0 = none (``auto``, multi-object results).

``report.json`` names the scene (``source`` block written by :func:`source_record`; older reports only give
``scene`` or ``video``), the object ids and per-view scores. Masks are read lazily, one file at a time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from mvsam.cache import hash_file
from mvsam.errors import InputError
from mvsam.scene import Scene

LAYOUTS = ("single", "per_object", "ids")


@dataclass(frozen=True)
class SceneReference:
    """The scene a result was made from: its path, forced format, content key and geometry settings."""

    path: Path
    format: str | None = None
    images_key: str | None = None  # sha256 of view names, sizes and image bytes when the result was made
    geometry: dict | None = None  # GeometrySettings as a dict, so export hits the same geometry cache
    cache_dir: Path | None = None  # the scene's cache folder when the command was told one


@dataclass
class Result:
    """A result folder: which views, which objects, and their masks (read on demand).

    ``views``: the stems of the result's views in order. ``object_ids``: sorted stable user-facing ids.
    ``scores``: (object id, stem) -> the producer's score, where it recorded one.
    """

    root: Path
    layout: str
    views: list[str]
    object_ids: list[int]
    scene: SceneReference | None
    command: str | None = None
    model: str | None = None
    checkpoint_sha256: str | None = None
    prompts: list[dict] = field(default_factory=list)
    scores: dict[tuple[int, str], float] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # stem -> image file name, where the report says

    def _check(self, object_id: int, stem: str) -> None:
        if object_id not in self.object_ids:
            raise InputError(
                f"{self.root}: no object with id {object_id}; the result has ids "
                f"{', '.join(map(str, self.object_ids)) or '(none)'}"
            )
        if stem not in self._view_set:
            raise InputError(f"{self.root}: no view {stem!r} in the result")

    @cached_property
    def _view_set(self) -> set[str]:
        return set(self.views)

    def ids(self, stem: str) -> np.ndarray:
        """HxW int64 object id per pixel of one view (0 = none); where objects overlap the larger id wins."""
        if self.layout == "ids":
            return _read_ids(self.root / "ids" / f"{stem}.png")
        out = None
        for object_id in self.object_ids:
            mask = self.mask(object_id, stem)
            if out is None:
                out = np.zeros(mask.shape, dtype=np.int64)
            out[mask] = object_id
        return out

    def mask(self, object_id: int, stem: str) -> np.ndarray:
        """HxW bool mask of one object in one view, read from disk now."""
        self._check(object_id, stem)
        if self.layout == "single":
            return _read_binary(self.root / "masks" / f"{stem}.png")
        if self.layout == "per_object":
            return _read_binary(self.root / "masks" / str(object_id) / f"{stem}.png")
        return _read_ids(self.root / "ids" / f"{stem}.png") == object_id

    def load_scene(self, override: str | Path | None = None, check: bool = True) -> Scene:
        """The result's scene, loaded and checked to be the one the result was made from.

        ``override`` points at the scene when it moved. Raises ValueError when the scene is unknown,
        missing, or its images changed (different views or image bytes) since the result was made.
        """
        reference = self.scene
        if override is None and reference is None:
            raise InputError(f"{self.root}/report.json does not say which scene it came from; pass --scene")
        path = Path(override) if override is not None else reference.path
        if not path.exists():
            raise InputError(
                f"the scene of {self.root} is not at {path} any more (moved or deleted); "
                f"pass --scene NEW_PATH to say where it is now"
            )
        scene = Scene.load(
            path,
            format=None if reference is None else reference.format,
            cache_dir=None if reference is None or override is not None else reference.cache_dir,
        )
        missing = [stem for stem in self.views if scene_view(scene, stem) is None]
        if missing:
            raise InputError(
                f"the scene at {path} has no view for {len(missing)} of the result's {len(self.views)} views "
                f"(e.g. {missing[0]!r}): it changed since {self.root} was made"
            )
        if check and reference is not None and reference.images_key is not None:
            if images_key(scene) != reference.images_key:
                raise InputError(
                    f"the images of the scene at {path} changed since {self.root} was made "
                    f"(content key differs); run the command again on the scene as it is now"
                )
        return scene


def scene_view(scene: Scene, stem: str) -> int | None:
    """Index of the scene view with this stem; frame numbers match across zero-padding widths."""
    for index, view in enumerate(scene.views):
        if view.stem == stem:
            return index
    if stem.isdigit():
        for index, view in enumerate(scene.views):
            if view.stem.isdigit() and int(view.stem) == int(stem):
                return index
    return None


def images_key(scene: Scene) -> str:
    """The same content key of the scene's images that keys its geometry cache."""
    from mvsam.geometry.pipeline import _images_key  # one definition of "the same images"

    return _images_key(scene, progress=False)


def source_record(
    scene: Scene,
    command: str,
    object_ids: list[int],
    prompts: list[dict],
    model: str | None = None,
    checkpoint: Path | None = None,
    geometry=None,
    scene_format: str | None = None,
) -> dict:
    """The ``source`` block of ``report.json`` that :func:`read_result` needs to re-open the scene."""
    return {
        "command": command,
        "scene": str(Path(scene.root).absolute()),
        "scene_format": scene_format,
        "cache_dir": str(Path(scene.cache_dir).absolute()),
        "detected_format": scene.source_format,
        "images_key": images_key(scene),
        "geometry": None if geometry is None else asdict(geometry),
        "model": model,
        "checkpoint_sha256": None if checkpoint is None else hash_file(checkpoint),
        "prompts": prompts,
        "object_ids": list(object_ids),
    }


def _read_png(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"mask file missing: {path}; the result folder is incomplete")
    with Image.open(path) as image:
        if image.mode in ("RGB", "RGBA"):
            return np.asarray(image.convert("L"))
        return np.asarray(image)


def _read_binary(path: Path) -> np.ndarray:
    return _read_png(path) > 127


def _read_ids(path: Path) -> np.ndarray:
    return _read_png(path).astype(np.int64)


def _int_ids(values) -> list[int]:
    ids = []
    for value in values:
        value = value.get("id", value.get("object_id")) if isinstance(value, dict) else value
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"object id {value!r} is not an integer")
        ids.append(value)
    return sorted(set(ids))


def _scene_reference(report: dict) -> SceneReference | None:
    source = report.get("source")
    if isinstance(source, dict) and source.get("scene"):
        return SceneReference(
            Path(source["scene"]),
            source.get("scene_format"),
            source.get("images_key"),
            source.get("geometry"),
            Path(source["cache_dir"]) if source.get("cache_dir") else None,
        )
    path = report.get("scene") or report.get("video")
    return SceneReference(Path(path)) if isinstance(path, str) else None


def read_result(path: str | Path) -> Result:
    """Open a result folder of ``segment``, ``track`` or ``auto``; raises ValueError when it is not one."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; give the --out folder of mvsam segment, auto or track")
    report_path = root / "report.json"
    report: dict = {}
    if report_path.is_file():
        try:
            report = json.loads(report_path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{report_path} is not valid JSON: {error}") from error
    masks, ids = root / "masks", root / "ids"
    object_dirs = (
        sorted(p for p in masks.iterdir() if p.is_dir() and p.name.isdigit()) if masks.is_dir() else []
    )
    flat = sorted(masks.glob("*.png")) if masks.is_dir() else []
    if object_dirs:
        layout = "per_object"
        views = sorted({p.stem for d in object_dirs for p in d.glob("*.png")})
    elif flat:
        layout, views = "single", [p.stem for p in flat]
    elif ids.is_dir() and any(ids.glob("*.png")):
        layout, views = "ids", sorted(p.stem for p in ids.glob("*.png"))
    else:
        raise InputError(
            f"{root} is not a result folder: it has no masks/<stem>.png, masks/<id>/<stem>.png or "
            f"ids/<stem>.png; give the --out folder of mvsam segment, auto or track"
        )
    source = report.get("source") if isinstance(report.get("source"), dict) else {}
    ordered = _report_views(report)
    if ordered and set(ordered) == set(views):
        views = ordered  # the producer's view order, not name order
    if layout == "per_object":
        object_ids = sorted(int(d.name) for d in object_dirs)
    elif "object_ids" in source:
        object_ids = _int_ids(source["object_ids"])
    elif "objects" in report:
        object_ids = _int_ids(report["objects"])
    elif layout == "single":
        object_ids = [1]
    else:
        found: set[int] = set()
        for stem in views:
            found.update(int(v) for v in np.unique(_read_ids(ids / f"{stem}.png")) if v)
        object_ids = sorted(found)
    if layout == "single" and len(object_ids) != 1:
        raise InputError(
            f"{report_path}: masks/<stem>.png holds one object but the report lists {object_ids}"
        )
    return Result(
        root=root,
        layout=layout,
        views=views,
        object_ids=object_ids,
        scene=_scene_reference(report),
        command=source.get("command"),
        model=source.get("model"),
        checkpoint_sha256=source.get("checkpoint_sha256"),
        prompts=list(source.get("prompts", [])),
        scores=_report_scores(report, object_ids),
        names=_report_names(report),
    )


def _report_views(report: dict) -> list[str]:
    records = report.get("views") or report.get("per_frame") or []
    stems = []
    for record in records:
        name = record.get("name") or record.get("frame") if isinstance(record, dict) else None
        if isinstance(name, str):
            stems.append(Path(name).stem if "." in name else name)
    return stems


def _report_names(report: dict) -> dict[str, str]:
    names = {}
    for record in report.get("views") or []:
        name = record.get("name") if isinstance(record, dict) else None
        if isinstance(name, str) and "." in name:
            names[Path(name).stem] = name
    return names


def _report_scores(report: dict, object_ids: list[int]) -> dict[tuple[int, str], float]:
    """Per-view scores of a one-object report (``views[].score`` or ``per_frame[].score``)."""
    if len(object_ids) != 1:
        return {}
    scores = {}
    for record in report.get("views") or report.get("per_frame") or []:
        if not isinstance(record, dict):
            continue
        name = record.get("name") or record.get("frame")
        score = record.get("score")
        if isinstance(name, str) and isinstance(score, int | float):
            scores[(object_ids[0], Path(name).stem if "." in name else name)] = float(score)
    return scores
