"""``mvsam batch`` on a real local Ray instance (2 CPUs, started once for this module).

Jobs: the bundled demo scene (segment), a copy of it (reconstruct), a copy of LLFF fern images_8
(reconstruct, cheap settings) and a broken scene (19 poses for 20 images). The good jobs must write what the
CLI writes when run one by one; the broken one is reported; the segment job's worker process is killed
mid-job and the retry completes; a rerun skips what is done.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import math
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mvsam.cli import main
from mvsam.demo.run import SCENE_DIR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="needs Ray: pip install -e '.[cluster]'"
    ),
]

CLICK = "view=0.jpg,x=265,y=267,label=1"
FERN_OPTIONS = {"depth_resolution": 128, "planes": 24, "neighbors": 3}
EXTRA = {"done"}  # what batch adds to a job's folder


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory, mobile_sam_checkpoint):
    """One Ray instance for the module; workers inherit this environment (own cache, shared checkpoint)."""
    from mvsam.batch.runner import start_local_ray

    checkpoint = mobile_sam_checkpoint
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MVSAM_HOME", str(tmp_path_factory.mktemp("ray_home")))
        patch.setenv("MVSAM_CHECKPOINT", str(checkpoint))
        start_local_ray(num_cpus=2)
        import ray

        yield ray
        ray.shutdown()


@pytest.fixture(scope="module")
def batch_setup(tmp_path_factory, data_dir, local_ray):
    root = tmp_path_factory.mktemp("batch")
    scenes = root / "scenes"
    shutil.copytree(SCENE_DIR, scenes / "demo_copy")
    fern = data_dir / "llff_fern"
    for name in ("fern", "broken"):
        shutil.copytree(fern / "images_8", scenes / name / "images_8")
    shutil.copy(fern / "poses_bounds.npy", scenes / "fern")
    np.save(scenes / "broken" / "poses_bounds.npy", np.load(fern / "poses_bounds.npy")[:19])
    jobs = [
        {
            "id": "demo-segment",
            "command": "segment",
            "scene": str(SCENE_DIR),
            "prompt": [CLICK],
            "iterations": 2,
        },
        {"id": "demo-copy", "command": "reconstruct", "scene": "scenes/demo_copy"},
        {"id": "fern", "command": "reconstruct", "scene": "scenes/fern"} | FERN_OPTIONS,
        {"id": "broken", "command": "reconstruct", "scene": "scenes/broken", "no_depth": True},
    ]
    jobs_file = root / "jobs.jsonl"
    jobs_file.write_text("".join(json.dumps(job) + "\n" for job in jobs))
    argv = ["batch", str(jobs_file), "--out", str(root / "out"), "--workers", "2", "--cpus-per-job", "1"]
    argv += ["--memory-per-job", "1", "--cache-dir", str(root / "cache"), "--retries", "1"]
    return root, argv


def kill_when_running(log: Path, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the worker process of a job's first attempt, 1.5 s after it starts."""
    while not stop.is_set():
        found = re.search(r"attempt 1 on \S+ pid (\d+)", log.read_text()) if log.exists() else None
        if found:
            time.sleep(1.5)
            os.kill(int(found.group(1)), signal.SIGKILL)
            killed.append(int(found.group(1)))
            return
        time.sleep(0.05)


def files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def same_report(ours, theirs) -> bool:
    """Equal, with floats within 1e-6 relative: the batch worker decodes on 1 thread and the CLI here on
    2, and torch's reductions may then differ in the last bit of a score."""
    if isinstance(ours, float) and isinstance(theirs, float):
        return math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(same_report(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(map(same_report, ours, theirs))
    return ours == theirs


def without_seconds(path: Path) -> dict:
    report = json.loads(path.read_text())
    report.pop("seconds")
    report["source"].pop("cache_dir")  # the CLI runs and the batch use different --cache-dir folders
    return report


def test_local_ray_listens_on_loopback_only(local_ray):
    assert [node["NodeManagerAddress"] for node in local_ray.nodes()] == ["127.0.0.1"]
    assert local_ray.cluster_resources()["CPU"] == 2


@pytest.fixture(scope="module")
def first_run(batch_setup):
    """The first batch run, during which the segment job's worker is killed: (exit code, stdout, pids)."""
    root, argv = batch_setup
    stop, killed = threading.Event(), []
    log = root / "out" / "logs" / "demo-segment.log"
    watcher = threading.Thread(target=kill_when_running, args=(log, stop, killed))
    watcher.start()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            code = main(argv)
    finally:
        stop.set()
        watcher.join()
    return code, printed.getvalue(), killed


def test_batch_matches_the_cli_reports_failure_and_survives_a_killed_worker(batch_setup, first_run, capsys):
    root, _ = batch_setup
    out = root / "out"
    code, printed, killed = first_run
    assert code == 1  # one job failed
    assert killed, "the segment job's worker was never seen running"
    status = {job["id"]: job for job in json.loads((out / "status.json").read_text())["jobs"]}
    assert {key: job["state"] for key, job in status.items()} == {
        "demo-segment": "done",
        "demo-copy": "done",
        "fern": "done",
        "broken": "failed",
    }
    # the killed attempt was retried in a new worker and completed
    assert status["demo-segment"]["attempts"] == 2
    marker = json.loads((out / "demo-segment" / "done").read_text())
    assert marker["attempt"] == 2 and marker["argv"][0] == str(SCENE_DIR)
    log = (out / "logs" / "demo-segment.log").read_text()
    assert f"attempt 1 on {marker['node']} pid {killed[0]}" in log and "attempt 2" in log
    # bad input is reported with its error and not retried
    assert status["broken"]["attempts"] == 1
    assert "19 poses but" in status["broken"]["error"] and "20 images" in status["broken"]["error"]
    assert re.search(r"broken\s+reconstruct\s+failed\s+1", printed)
    assert "3 done, 1 failed, 0 skipped" in printed
    assert not (out / "broken" / "done").exists()
    for job in ("demo-copy", "fern"):
        assert status[job]["attempts"] == 1 and status[job]["stage"] and status[job]["seconds"] > 0

    # The same jobs through the CLI one by one, each with its own fresh cache.
    cli = root / "cli"
    scenes = root / "scenes"
    runs = {
        "demo-segment": ["segment", str(SCENE_DIR), "--prompt", CLICK, "--iterations", "2"],
        "demo-copy": ["reconstruct", str(scenes / "demo_copy")],
        "fern": ["reconstruct", str(scenes / "fern"), "--depth-resolution", "128", "--planes", "24"]
        + ["--neighbors", "3"],
    }
    for job, run in runs.items():
        assert main([*run, "--out", str(cli / job), "--cache-dir", str(root / "cli_cache" / job)]) == 0
    capsys.readouterr()
    for job in runs:
        ours, theirs = files(out / job), files(cli / job)
        assert set(ours) == set(theirs) | EXTRA
    # demo scene (RGB-D): every file identical, the report apart from its timings and last-bit float noise
    for name, path in files(cli / "demo-segment").items():
        if name == "report.json":
            ours, theirs = without_seconds(out / "demo-segment" / name), without_seconds(path)
            assert same_report(ours, theirs), (ours, theirs)
        else:
            assert path.read_bytes() == (out / "demo-segment" / name).read_bytes(), name
    for name, path in files(cli / "demo-copy").items():
        assert path.read_bytes() == (out / "demo-copy" / name).read_bytes(), name
    # fern: identical cameras; depth equal up to pycolmap's run-to-run variation of the sparse points that
    # bound each view's depth range (two CLI runs differ by as much)
    assert (cli / "fern" / "views.json").read_bytes() == (out / "fern" / "views.json").read_bytes()
    for name, path in files(cli / "fern").items():
        if name.endswith(".npy"):
            a, b = np.load(path), np.load(out / "fern" / name)
            assert a.shape == b.shape == (378, 504) and a.dtype == b.dtype == np.float32
            assert abs(np.mean(a > 0) - np.mean(b > 0)) < 0.05, name
            both = (a > 0) & (b > 0)
            assert np.median(np.abs(a[both] - b[both]) / a[both]) < 0.02, name


def test_rerun_skips_done_jobs_and_force_reruns(batch_setup, first_run, capsys):
    root, argv = batch_setup
    out = root / "out"
    before = {job: (out / job / "done").read_text() for job in ("demo-segment", "demo-copy", "fern")}
    assert main(argv) == 1  # the broken job fails again
    printed = capsys.readouterr().out
    assert "0 done, 1 failed, 3 skipped" in printed
    status = {job["id"]: job for job in json.loads((out / "status.json").read_text())["jobs"]}
    assert [status[job]["state"] for job in before] == ["skipped"] * 3
    assert {job: (out / job / "done").read_text() for job in before} == before
    assert (out / "logs" / "broken.log").read_text().count("attempt 1 on") == 2  # appended per run

    # --force on one cheap job (its own JOBS file, same output folder) runs it again
    jobs_file = root / "one.jsonl"
    jobs_file.write_text(
        json.dumps({"id": "demo-copy", "command": "reconstruct", "scene": "scenes/demo_copy"})
    )
    force = [jobs_file if part.endswith("jobs.jsonl") else part for part in argv]
    assert main([str(part) for part in force] + ["--force"]) == 0
    assert "1 done, 0 failed, 0 skipped" in capsys.readouterr().out
    assert (out / "demo-copy" / "done").read_text() != before["demo-copy"]
