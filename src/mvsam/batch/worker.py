"""What runs inside one Ray task: one job, exactly as ``mvsam <command> ...`` would run it.

The job's folder ``OUT/<id>/`` is emptied first (a retry starts clean), everything the job prints (Python
and C libraries alike) goes to ``OUT/logs/<id>.log``, and on success the ``done`` marker is written
atomically last. Nothing here imports Ray: the runner wraps :func:`run_job` as a remote function.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from mvsam.batch.jobs import Job
from mvsam.cache import atomic_write_bytes

DONE = "done"


@dataclass(frozen=True)
class JobOutcome:
    """How one attempt of a job ended. ``retryable`` is False for bad input (the same input fails again)."""

    id: str
    attempt: int
    ok: bool
    error: str  # one line; empty when ok
    retryable: bool
    seconds: float
    node: str
    pid: int


@dataclass(frozen=True)
class DoneMarker:
    """Content of ``OUT/<id>/done``: which command line produced the folder, and when."""

    id: str
    command: str
    argv: list[str]
    attempt: int
    seconds: float
    node: str
    finished: str  # UTC, ISO 8601


def job_dir(out: Path, job_id: str) -> Path:
    return Path(out) / job_id


def log_path(out: Path, job_id: str) -> Path:
    return Path(out) / "logs" / f"{job_id}.log"


def read_done(out: Path, job: Job) -> DoneMarker | None:
    """The job's done marker when it exists and was written for the same command line, else None."""
    path = job_dir(out, job.id) / DONE
    try:
        marker = DoneMarker(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return marker if marker.command == job.command and tuple(marker.argv) == job.argv else None


@functools.cache
def _parser():
    from mvsam.cli import build_parser

    return build_parser()


@functools.cache
def worker_checkpoint(model_type: str) -> Path:
    """The model's weights, resolved (and verified or downloaded) once per worker process.

    A file lock in the weights cache makes workers on one machine take turns, so a missing checkpoint is
    downloaded once and the others find it verified in the cache.
    """
    from mvsam.sam.weights import resolve_checkpoint, weights_dir

    lock = weights_dir() / ".batch.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        return resolve_checkpoint(model_type)


@contextlib.contextmanager
def _output_to(path: Path):
    """Send stdout, stderr (file descriptors too, for C libraries) and logging to ``path`` (appended)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    root = logging.getLogger()
    level = root.level
    with open(path, "a", buffering=1) as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield log
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
            log.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextlib.contextmanager
def _working_directory(path: str):
    """Run in the JOBS file's folder when this machine has it (relative paths in options resolve there)."""
    previous = os.getcwd()
    if Path(path).is_dir():
        os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def run_job(job: Job, out: str, attempt: int, threads: int) -> JobOutcome:
    """Run one attempt of ``job`` with ``threads`` torch threads; never raises for a failing job."""
    import torch

    out = Path(out)
    start = time.perf_counter()
    node, pid = socket.gethostname(), os.getpid()
    folder = job_dir(out, job.id)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    error, retryable = "", False
    with _output_to(log_path(out, job.id)) as log:
        print(f"=== job {job.id} attempt {attempt} on {node} pid {pid} at {time.ctime()}", file=log)
        print(f"=== mvsam {job.command} {' '.join(job.argv)}", file=log)
        torch.set_num_threads(threads)
        try:
            with _working_directory(job.workdir):
                args = _parser().parse_args([job.command, *job.argv])
                if hasattr(args, "model") and getattr(args, "checkpoint", False) is None:
                    args.checkpoint = worker_checkpoint(args.model)
                try:
                    code = int(args.run(args) or 0)
                except SystemExit as exit_:  # a command that calls sys.exit
                    code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            if code != 0:  # the command itself decided: running it again would decide the same
                error = f"{job.command} exited with code {code}"
        except (ValueError, FileNotFoundError) as exception:  # bad input: the CLI's exit code 2
            error = f"{type(exception).__name__}: {exception}"
            traceback.print_exc(file=log)
        except Exception as exception:  # a crash may be transient (memory, disk, a flaky mount)
            error, retryable = f"{type(exception).__name__}: {exception}", True
            traceback.print_exc(file=log)
        seconds = time.perf_counter() - start
        print(f"=== {'failed: ' + error if error else 'done'} after {seconds:.1f} s", file=log)
    if not error:
        marker = DoneMarker(
            job.id, job.command, list(job.argv), attempt, round(seconds, 3), node,
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )  # fmt: skip
        atomic_write_bytes(folder / DONE, json.dumps(asdict(marker), indent=1).encode())
    first_line = error.strip().splitlines()[0][:300] if error.strip() else error
    return JobOutcome(job.id, attempt, not error, first_line, retryable, seconds, node, pid)
