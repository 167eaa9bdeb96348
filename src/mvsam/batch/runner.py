"""Run validated jobs as Ray tasks: on a local Ray instance started here, or on a cluster by address.

The driver keeps at most ``workers`` tasks in flight, each declaring its CPUs and memory so Ray can pack
them; it retries an attempt that crashed (worker killed, out of memory, an exception) up to ``retries``
times, never one that failed on bad input; and it keeps ``OUT/status.json`` current (per job: state, the
last line it printed, attempts, seconds, error).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from mvsam.batch.jobs import Job
from mvsam.batch.worker import JobOutcome, log_path, read_done, run_job
from mvsam.cache import atomic_write_bytes
from mvsam.errors import InputError

INSTALL_HINT = "mvsam batch needs Ray: pip install 'mvsam[cluster]'"
POLL_SECONDS = 1.0
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class RayMissingError(ImportError):
    """Ray, the ``cluster`` extra, is not installed."""


def import_ray():
    """The ``ray`` module, or :class:`RayMissingError` saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise RayMissingError(f"{INSTALL_HINT} ({error})") from None
    return ray


@dataclass(frozen=True)
class BatchSettings:
    """How to run a batch. ``workers`` None: as many jobs at once as the Ray resources allow."""

    out: Path
    workers: int | None = None
    address: str | None = None  # None: a local Ray instance; "auto" or "ray://host:10001": a cluster
    cpus_per_job: int = 2
    memory_per_job_gb: float = 4.0
    retries: int = 1
    force: bool = False

    def __post_init__(self):
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.cpus_per_job < 1:
            raise InputError(f"--cpus-per-job must be >= 1, got {self.cpus_per_job}")
        if self.memory_per_job_gb <= 0:
            raise InputError(f"--memory-per-job must be > 0 GiB, got {self.memory_per_job_gb}")
        if self.retries < 0:
            raise InputError(f"--retries must be >= 0, got {self.retries}")


@dataclass
class JobStatus:
    """One job's line in ``status.json`` and in the summary table."""

    id: str
    command: str
    line: int
    state: str = "pending"  # pending, queued, running, done, failed, skipped, interrupted
    stage: str = ""  # the last line the job printed (its progress bar or message)
    attempts: int = 0
    seconds: float | None = None  # of the last attempt
    error: str = ""
    node: str = ""
    log: str = ""
    log_offset: int = field(default=0, repr=False)  # where the current attempt's lines start


@dataclass(frozen=True)
class BatchReport:
    jobs: list[JobStatus]
    seconds: float

    @property
    def failed(self) -> list[JobStatus]:
        return [status for status in self.jobs if status.state == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for status in self.jobs:
            counts[status.state] = counts.get(status.state, 0) + 1
        return counts


def start_local_ray(num_cpus: int) -> None:
    """A private Ray instance on this machine: ``num_cpus`` CPUs, no dashboard, bound to loopback only."""
    # Read when Ray is imported: "no cluster" makes Ray use 127.0.0.1 for every address it binds.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = import_ray()
    ray.init(
        address="local",  # a new instance, even when `ray start` left one running on this machine
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=128 << 20,  # jobs exchange only small records
        configure_logging=False,
    )


def _check_feasible(ray, settings: BatchSettings) -> None:
    """Fail early (instead of waiting forever) when no node can hold one job."""
    need_memory = settings.memory_per_job_gb * 2**30
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    if not any(r.get("CPU", 0) >= settings.cpus_per_job and r.get("memory", 0) >= need_memory for r in nodes):
        offered = ", ".join(f"{r.get('CPU', 0):g} CPUs/{r.get('memory', 0) / 2**30:.1f} GiB" for r in nodes)
        raise InputError(
            f"no Ray node offers {settings.cpus_per_job} CPUs and {settings.memory_per_job_gb:g} GiB per job "
            f"(nodes: {offered or 'none'}); lower --cpus-per-job / --memory-per-job"
        )


def _tail_line(path: Path, offset: int) -> str:
    """The last line (or progress-bar refresh) the job printed to ``path`` after ``offset``; "started" when
    only the worker's own header is there, "" when nothing is."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - 4096))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    pieces = [piece.strip() for piece in text.replace("\r", "\n").split("\n")]
    printed = [piece for piece in pieces if piece and not piece.startswith("=== ")]
    if printed:
        return printed[-1][:160]
    return "started" if any(pieces) else ""


def _ray_error_line(error: Exception) -> str:
    """One readable line for a Ray failure: its type and the last line of its message (the root cause)."""
    lines = [line.strip() for line in ANSI_ESCAPE.sub("", str(error)).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1][:240] if lines else ''}"


class _Status:
    """The job table, written to ``OUT/status.json`` atomically."""

    def __init__(self, jobs: list[Job], out: Path, jobs_file: str):
        self.out = out
        self.jobs_file = jobs_file
        self.by_id = {
            job.id: JobStatus(job.id, job.command, job.line, log=str(log_path(out, job.id))) for job in jobs
        }

    def refresh_stages(self) -> None:
        for status in self.by_id.values():
            if status.state in ("queued", "running"):
                line = _tail_line(Path(status.log), status.log_offset)
                if line:
                    status.state = "running"
                    status.stage = line

    def write(self) -> None:
        jobs = [asdict(status) for status in self.by_id.values()]
        for record in jobs:
            del record["log_offset"]
        report = BatchReport(list(self.by_id.values()), 0.0)
        payload = {
            "jobs_file": self.jobs_file,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "counts": report.counts(),
            "jobs": jobs,
        }
        atomic_write_bytes(self.out / "status.json", json.dumps(payload, indent=1).encode())


def run_batch(
    jobs: list[Job], settings: BatchSettings, jobs_file: str = "", progress: bool = True
) -> BatchReport:
    """Run ``jobs`` (from :func:`mvsam.batch.jobs.read_jobs`) on Ray; returns every job's final status.

    Connects to ``settings.address``, or reuses a Ray instance this process already started, or starts a
    local one with ``workers x cpus_per_job`` CPUs (and shuts it down at the end).
    """
    ray = import_ray()
    start = time.perf_counter()
    out = Path(os.path.abspath(settings.out))  # as in read_jobs
    out.mkdir(parents=True, exist_ok=True)
    status = _Status(jobs, out, jobs_file)
    pending: deque[tuple[Job, int]] = deque()
    for job in jobs:
        marker = None if settings.force else read_done(out, job)
        if marker is None:
            pending.append((job, 1))
        else:
            state = status.by_id[job.id]
            state.state, state.seconds, state.node, state.attempts = "skipped", marker.seconds, marker.node, 0
            state.stage = "done earlier"
    status.write()
    if not pending:
        return BatchReport(list(status.by_id.values()), time.perf_counter() - start)

    started_here = False
    if not ray.is_initialized():
        if settings.address is None:
            workers = settings.workers or max(1, (os.cpu_count() or 1) // settings.cpus_per_job)
            start_local_ray(num_cpus=workers * settings.cpus_per_job)
        else:
            ray.init(address=settings.address, log_to_driver=False)
        started_here = True
    try:
        _check_feasible(ray, settings)
        task = ray.remote(run_job).options(
            num_cpus=settings.cpus_per_job,
            memory=int(settings.memory_per_job_gb * 2**30),
            max_retries=0,  # retries are the driver's, so status.json and the summary see every attempt
        )
        limit = settings.workers or len(pending)
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), unit="job", disable=not progress)
        in_flight: dict = {}
        while pending or in_flight:
            while pending and len(in_flight) < limit:
                job, attempt = pending.popleft()
                state = status.by_id[job.id]
                state.state, state.attempts, state.error = "queued", attempt, ""
                log = Path(state.log)
                state.log_offset = log.stat().st_size if log.exists() else 0
                in_flight[task.remote(job, str(out), attempt, settings.cpus_per_job)] = (job, attempt)
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_SECONDS)
            status.refresh_stages()
            for ref in ready:
                job, attempt = in_flight.pop(ref)
                try:
                    outcome: JobOutcome = ray.get(ref)
                except ray.exceptions.RayError as error:  # the worker died: killed, out of memory, node lost
                    outcome = JobOutcome(job.id, attempt, False, _ray_error_line(error), True, 0.0, "", 0)
                state = status.by_id[job.id]
                state.stage = _tail_line(Path(state.log), state.log_offset) or state.stage
                state.seconds, state.error = round(outcome.seconds, 2), outcome.error
                state.node = outcome.node or state.node
                if outcome.ok:
                    state.state = "done"
                elif outcome.retryable and attempt <= settings.retries:
                    state.state = "pending"
                    pending.append((job, attempt + 1))
                else:
                    state.state = "failed"
                if state.state in ("done", "failed"):
                    bar.update(1)
                counts = BatchReport(list(status.by_id.values()), 0.0).counts()
                bar.set_postfix(done=counts.get("done", 0), failed=counts.get("failed", 0))
            status.write()
        bar.close()
    except KeyboardInterrupt:
        for state in status.by_id.values():
            if state.state in ("pending", "queued", "running"):
                state.state = "interrupted"  # not done: the next run picks it up
        raise
    finally:
        status.write()
        if started_here:
            ray.shutdown()
    return BatchReport(list(status.by_id.values()), time.perf_counter() - start)


def summary_table(report: BatchReport) -> str:
    """A plain-text table: one row per job (state, attempts, seconds, error), then the counts."""
    rows = [("id", "command", "state", "tries", "seconds", "error")]
    for status in report.jobs:
        seconds = "-" if status.seconds is None else f"{status.seconds:.1f}"
        rows.append(
            (status.id, status.command, status.state, str(status.attempts), seconds, status.error[:100])
        )
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5]
             for row in rows]  # fmt: skip
    counts = report.counts()
    lines.append(
        f"{counts.get('done', 0)} done, {counts.get('failed', 0)} failed, {counts.get('skipped', 0)} skipped "
        f"in {report.seconds:.1f} s"
    )
    return "\n".join(line.rstrip() for line in lines)
