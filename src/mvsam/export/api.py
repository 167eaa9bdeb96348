"""``export(result, formats, out)``: every format from one result folder, written all at once or not at all.

Everything is written into a hidden staging folder beside ``out`` and renamed into place at the end, so a
failure (bad input, a full disk, Ctrl-C) leaves ``out`` as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mvsam.errors import InputError
from mvsam.export.result import Result, read_result, scene_view
from mvsam.scene import Scene

FORMATS = ("png", "davis", "coco", "yolo", "nerfstudio", "colmap", "rgba", "points", "mesh")


@dataclass
class ExportReport:
    """What one export wrote: paths relative to ``out``, per format, and per-object mesh facts."""

    out: Path
    written: dict[str, list[str]] = field(default_factory=dict)
    meshes: dict[int, dict] = field(default_factory=dict)  # object id -> faces, vertices, watertight, seconds


def parse_formats(formats: str | list[str]) -> list[str]:
    """Format names from ``"coco,yolo"``, a list, or ``"all"``; unknown names raise ValueError."""
    names = formats.split(",") if isinstance(formats, str) else [n for f in formats for n in f.split(",")]
    names = [n.strip().lower() for n in names if n.strip()]
    if "all" in names:
        return list(FORMATS)
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise InputError(
            f"unknown export format {', '.join(unknown) or '(none)'}; choose from {', '.join(FORMATS)} or all"
        )
    return list(dict.fromkeys(names))


def _geometry_scene(result: Result, scene: Scene) -> Scene:
    """The scene with cameras and depth, read from the same geometry cache the result was made with."""
    from mvsam.geometry import GeometrySettings, MvsSettings, SfmSettings, compute_geometry

    recorded = dict(result.scene.geometry or {}) if result.scene is not None else {}
    if recorded:
        settings = GeometrySettings(
            sfm=SfmSettings(**recorded.pop("sfm")), mvs=MvsSettings(**recorded.pop("mvs")), **recorded
        )
        settings.compute_depth = True
    else:
        settings = GeometrySettings()
    return compute_geometry(scene, settings, progress=True)


def _masks_for(result: Result, scene: Scene, object_id: int) -> list:
    """One HxW bool mask per scene view (None for scene views the result does not have)."""
    masks = [None] * len(scene.views)
    for stem in result.views:
        masks[scene_view(scene, stem)] = result.mask(object_id, stem)
    return masks


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError(f"{out} is not empty; choose another --out or pass --force to replace it")


def _publish(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` with renames only."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
        os.replace(out, old / out.name)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export(
    result: str | Path | Result,
    formats: str | list[str],
    out: str | Path,
    force: bool = False,
    objects: list[int] | None = None,
    scene: str | Path | None = None,
    mesh_settings=None,
) -> ExportReport:
    """Write ``formats`` (see :data:`FORMATS`, or ``"all"``) of a result folder into ``out``.

    ``objects``: the object ids to export (default: all). ``scene``: where the result's scene is now, when
    it moved. Raises ValueError for bad input before anything is written; ``out`` must be missing or empty
    unless ``force``.
    """
    result = result if isinstance(result, Result) else read_result(result)
    names = parse_formats(formats)
    out = Path(out).absolute()
    _prepare_out(out, force)
    object_ids = list(result.object_ids) if objects is None else sorted(set(objects))
    for object_id in object_ids:
        if object_id not in result.object_ids:
            raise InputError(
                f"{result.root} has no object with id {object_id}; its ids are "
                f"{', '.join(map(str, result.object_ids)) or '(none)'}"
            )
    if not object_ids:
        raise InputError(f"{result.root} holds no objects to export")
    needs_scene = {"rgba", "nerfstudio", "colmap", "points", "mesh"} & set(names)
    loaded = result.load_scene(scene) if needs_scene else None
    if loaded is not None and {"points", "mesh"} & set(names):
        loaded = _geometry_scene(result, loaded)
    elif loaded is not None and {"nerfstudio"} & set(names) and not loaded.has_cameras:
        loaded = _geometry_scene(result, loaded)
    view_names = dict(result.names)
    if loaded is None and "coco" in names and len(view_names) < len(result.views):
        try:  # COCO's file_name wants the image names; the masks alone do not need the scene
            loaded_names = result.load_scene(scene, check=False)
            view_names.update({s: loaded_names.views[scene_view(loaded_names, s)].name for s in result.views})
        except (ValueError, FileNotFoundError):
            pass  # file_name falls back to <stem>.png
    if loaded is not None:
        view_names.update({s: loaded.views[scene_view(loaded, s)].name for s in result.views})

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    report = ExportReport(out=out)
    try:
        for name in names:
            paths = _write(name, result, object_ids, loaded, view_names, staging, report, mesh_settings)
            report.written[name] = [str(p.relative_to(staging)) for p in paths]
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _write(name, result, object_ids, scene, view_names, staging, report, mesh_settings) -> list[Path]:
    from mvsam.export import cameras, coco, masks, points, yolo

    if name == "png":
        return masks.export_png(result, object_ids, staging)
    if name == "davis":
        return masks.export_davis(result, object_ids, staging)
    if name == "coco":
        return coco.export_coco(result, object_ids, view_names, staging)
    if name == "yolo":
        return yolo.export_yolo(result, object_ids, staging)
    if name == "rgba":
        return masks.export_rgba(result, object_ids, scene, staging)
    if name == "nerfstudio":
        return cameras.export_nerfstudio(result, object_ids, scene, staging)
    if name == "colmap":
        return cameras.export_colmap(result, object_ids, scene, staging)
    if name == "points":
        clouds = {}
        for object_id in object_ids:
            cloud = points.object_cloud(scene, _masks_for(result, scene, object_id))
            if len(cloud) == 0:
                raise InputError(f"object {object_id} has no depth anywhere: no mask pixel has known depth")
            clouds[object_id] = cloud
        return points.export_points(clouds, staging, labelled=result.layout == "ids" or len(object_ids) > 1)
    from mvsam.export.mesh import reconstruct_mesh, write_mesh

    written = []
    for object_id in object_ids:
        mesh = reconstruct_mesh(
            scene, _masks_for(result, scene, object_id), mesh_settings, name=f"object {object_id}"
        )
        report.meshes[object_id] = {
            "vertices": len(mesh.vertices),
            "faces": len(mesh.faces),
            "watertight": mesh.watertight,
            "voxel_size": mesh.voxel_size,
            "seconds": round(mesh.seconds, 2),
        }
        written += write_mesh(mesh, staging / "meshes" / str(object_id))
    return written
