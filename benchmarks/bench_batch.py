"""Overhead of ``mvsam batch`` (Ray) against running the same jobs one by one with the CLI.

    python benchmarks/bench_batch.py [--data ../shared/data] [--scene dtu_scan24] [--jobs 2] [--rounds 1]
                                     [--json bench_batch.json]

Each job is ``mvsam reconstruct SCENE`` with its own empty cache (so every job computes its geometry; on
DTU scan24, about 100 s on 2 cores). Two arms run the identical command lines (from
``mvsam.batch.read_jobs``): *sequential*, one ``mvsam <command> ...`` process after another, and *ray*, one
``mvsam batch JOBS --workers 1 --cpus-per-job 2`` process (Ray start-up and shut-down included), so both use
2 threads one job at a time and the difference is what Ray costs. Rounds alternate the order (sequential
first, then ray first) to cancel drift in the load of a shared machine. Reported: wall seconds per arm, the
overhead ratio, and for the ray arm the seconds inside the jobs (from ``status.json``) against the whole run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mvsam.batch import read_jobs

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MVSAM = [sys.executable, "-m", "mvsam.cli"]


def write_jobs(folder: Path, scene: Path, count: int, arm: str, options: dict) -> Path:
    """A JOBS file of ``count`` reconstruct jobs on ``scene``, each with its own cache under ``folder``."""
    lines = [
        json.dumps(
            {"id": f"job{i}", "command": "reconstruct", "scene": str(scene), "cache_dir": f"cache/{arm}/{i}"}
            | options
        )
        for i in range(count)
    ]
    path = folder / f"jobs_{arm}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_sequential(jobs_file: Path, out: Path) -> dict:
    """Every job as its own CLI process, one after another."""
    seconds = []
    start = time.perf_counter()
    for job in read_jobs(jobs_file, out):
        tick = time.perf_counter()
        subprocess.run([*MVSAM, job.command, *job.argv], cwd=job.workdir, check=True, capture_output=True)
        seconds.append(time.perf_counter() - tick)
    return {"seconds": round(time.perf_counter() - start, 2), "per_job": [round(s, 2) for s in seconds]}


def run_ray(jobs_file: Path, out: Path) -> dict:
    """All jobs through ``mvsam batch`` on a local Ray instance it starts (and stops) itself."""
    start = time.perf_counter()
    argv = [*MVSAM, "batch", str(jobs_file), "--out", str(out), "--workers", "1", "--cpus-per-job", "2"]
    subprocess.run(argv, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    status = json.loads((out / "status.json").read_text())
    inside = [job["seconds"] for job in status["jobs"]]
    return {
        "seconds": round(seconds, 2),
        "per_job_inside": inside,
        "outside_jobs": round(seconds - sum(inside), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--scene", default="dtu_scan24", help="folder under --data, or a path")
    parser.add_argument("--jobs", type=int, default=2, help="jobs per arm")
    parser.add_argument("--rounds", type=int, default=1, help="each round runs both arms, alternating order")
    parser.add_argument(
        "--options", type=json.loads, default={}, help='reconstruct options, JSON: {"planes": 48}'
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    scene = args.data / args.scene if (args.data / args.scene).is_dir() else Path(args.scene).resolve()
    if not scene.is_dir():
        raise SystemExit(f"scene not found: {scene}")
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    results = []
    try:
        for round_index in range(args.rounds):
            arms = ("sequential", "ray") if round_index % 2 == 0 else ("ray", "sequential")
            record = {"round": round_index, "order": list(arms)}
            for arm in arms:
                name = f"{arm}{round_index}"
                jobs_file = write_jobs(work, scene, args.jobs, name, args.options)
                runner = run_sequential if arm == "sequential" else run_ray
                record[arm] = runner(jobs_file, work / f"out_{name}")
                print(f"round {round_index} {arm}: {record[arm]}", flush=True)
            record["overhead"] = round(record["ray"]["seconds"] / record["sequential"]["seconds"] - 1, 4)
            results.append(record)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sequential = sum(r["sequential"]["seconds"] for r in results)
    ray = sum(r["ray"]["seconds"] for r in results)
    summary = {
        "scene": args.scene,
        "jobs_per_arm": args.jobs,
        "options": args.options,
        "rounds": results,
        "sequential_seconds": round(sequential, 2),
        "ray_seconds": round(ray, 2),
        "overhead": round(ray / sequential - 1, 4),
    }
    print(
        f"{args.jobs} jobs x {args.rounds} rounds on {args.scene}: sequential {sequential:.1f} s, "
        f"ray {ray:.1f} s, overhead {100 * summary['overhead']:+.1f}%"
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
