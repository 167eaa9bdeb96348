"""``mvsam batch JOBS --out DIR``: run many jobs (one JSON object a line) on local Ray or a Ray cluster."""

from __future__ import annotations

import sys
from pathlib import Path

from mvsam.batch import BatchSettings, RayMissingError, read_jobs, run_batch, summary_table


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "batch", help="run many jobs (JSON lines) on a local Ray instance or a Ray cluster, resumably"
    )
    parser.add_argument(
        "jobs",
        type=Path,
        help='JSON-lines file: {"id": "a", "command": "segment", "scene": "path", ...command options}',
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder: <id>/, logs/, status.json")
    parser.add_argument(
        "--workers", type=int, default=None, help="jobs at once (default: CPUs / cpus-per-job)"
    )
    parser.add_argument(
        "--address", default=None, help="Ray cluster: 'auto' or 'ray://HEAD:10001' (default: start Ray here)"
    )
    parser.add_argument("--cpus-per-job", type=int, default=2, help="CPUs (torch threads) per job")
    parser.add_argument(
        "--memory-per-job", type=float, default=4.0, help="GiB of memory Ray reserves per job"
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="retries of a job that crashed (not bad input)"
    )
    parser.add_argument("--force", action="store_true", help="rerun jobs that are already done")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="scene caches here (default: beside each scene)"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    settings = BatchSettings(
        out=args.out,
        workers=args.workers,
        address=args.address,
        cpus_per_job=args.cpus_per_job,
        memory_per_job_gb=args.memory_per_job,
        retries=args.retries,
        force=args.force,
    )
    jobs = read_jobs(args.jobs, args.out, cache_root=args.cache_dir)
    try:
        report = run_batch(jobs, settings, jobs_file=str(args.jobs))
    except RayMissingError as error:
        print(f"mvsam batch: error: {error}", file=sys.stderr)
        return 2
    print(summary_table(report))
    print(f"status: {Path(args.out) / 'status.json'}, logs: {Path(args.out) / 'logs'}/")
    return 1 if report.failed else 0
