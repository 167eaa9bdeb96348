"""Content-keyed on-disk cache with atomic writes, shared by every expensive stage."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def mvsam_home() -> Path:
    """Root of the user cache: ``$MVSAM_HOME`` or ``~/.cache/mvsam``."""
    return Path(os.environ.get("MVSAM_HOME", Path.home() / ".cache" / "mvsam"))


def hash_bytes(*parts: bytes | str) -> str:
    """sha256 hex digest of the concatenated parts (str parts are UTF-8 encoded)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
    return digest.hexdigest()


def hash_array(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    array = np.ascontiguousarray(array)
    return hash_bytes(str(array.dtype), str(array.shape), array.tobytes())


def hash_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def hash_settings(settings: Any) -> str:
    """sha256 of a JSON-serialisable settings object (dataclasses via ``vars``)."""
    return hash_bytes(json.dumps(settings, sort_keys=True, default=lambda o: vars(o)))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez`` written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_npz(path: str | Path) -> dict[str, np.ndarray] | None:
    """Arrays of a cached ``.npz``, or None when missing or unreadable (a corrupt entry is a miss)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):
        return None
