"""Content-keyed on-disk cache with atomic writes, shared by every expensive stage."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_current_umask()  # what open() would give: mkstemp's 0600 is too private for outputs


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


@contextlib.contextmanager
def _temporary_beside(path: Path) -> Iterator[tuple[int, Path]]:
    """(fd, name) of a temporary file next to ``path``, renamed onto it when the block succeeds.

    The name carries our pid (``.<name>.<pid>.<random>.tmp``) so :func:`remove_orphan_temporaries` can tell a
    file left by a killed process from one another process is still writing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX
    )
    try:
        os.fchmod(handle, FILE_MODE)
        yield handle, Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see a partial file."""
    with _temporary_beside(Path(path)) as (handle, _), os.fdopen(handle, "wb") as stream:
        stream.write(data)


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """``np.savez`` written atomically."""
    with _temporary_beside(Path(path)) as (handle, _), os.fdopen(handle, "wb") as stream:
        np.savez(stream, **arrays)


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (owned by anyone): stale lock and temporary-file owners."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_orphan_temporaries(folder: str | Path) -> int:
    """Delete ``.*.<pid>.*.tmp`` files under ``folder`` whose writer process is gone; returns how many.

    Left behind when a process is killed (SIGKILL, power loss) between creating and renaming the file.
    """
    removed = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    for root, _, files in os.walk(folder):
        for name in files:
            if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
                continue
            parts = name[: -len(TMP_SUFFIX)].rsplit(".", 2)
            if len(parts) != 3 or not parts[1].isdigit() or process_alive(int(parts[1])):
                continue
            Path(root, name).unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("removed %d temporary files left by killed runs under %s", removed, folder)
    return removed


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block.

    Concurrent runs on one scene wait here for the one computing ``what`` instead of racing; the lock
    is released by the kernel if the holder dies, so a killed run never leaves a stale lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another mvsam process computing {what} ({path})", flush=True)
            start = time.perf_counter()
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("waited %.1fs for %s", time.perf_counter() - start, path)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
