"""Point clouds to and from binary PLY (x, y, z float32 + red, green, blue uint8), via plyfile."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from plyfile import PlyData, PlyElement

from mvsam.cache import atomic_write_bytes


def write_ply(
    path: str | Path,
    xyz: np.ndarray,
    rgb: np.ndarray | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> None:
    """Write Nx3 points (and Nx3 uint8 colours, and N-long per-vertex properties such as ``instance``)
    as a binary little-endian PLY, atomically."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points must be Nx3, got shape {xyz.shape}")
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")]
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != xyz.shape:
            raise ValueError(f"colours must be Nx3 like the points, got {rgb.shape} for {xyz.shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    extra = {name: np.asarray(values) for name, values in (extra or {}).items()}
    for name, values in extra.items():
        if values.shape != (len(xyz),):
            raise ValueError(f"property {name!r} needs one value per point, got shape {values.shape}")
        fields.append((name, values.dtype.str.lstrip("<>=|")))
    vertices = np.empty(len(xyz), dtype=fields)
    for k, name in enumerate("xyz"):
        vertices[name] = xyz[:, k]
    if rgb is not None:
        for k, name in enumerate(("red", "green", "blue")):
            vertices[name] = rgb[:, k]
    for name, values in extra.items():
        vertices[name] = values
    buffer = io.BytesIO()
    PlyData([PlyElement.describe(vertices, "vertex")], text=False).write(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(Nx3 float64 points, Nx3 uint8 colours or None) of a PLY's vertex element."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY not found: {path}")
    vertex = PlyData.read(str(path))["vertex"]
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    names = vertex.data.dtype.names
    rgb = None
    if all(n in names for n in ("red", "green", "blue")):
        rgb = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1).astype(np.uint8)
    return xyz, rgb
