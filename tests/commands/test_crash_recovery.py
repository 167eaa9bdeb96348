"""Killed and concurrent runs: ``mvsam segment`` in subprocesses on cold copies of the bundled demo scene
(its first 4 views: provided depth and poses, no SfM).

A run killed with SIGKILL in any stage, or interrupted with Ctrl-C, leaves nothing that changes the next
run's result and no temporary files; two runs started together on one cold scene wait for one geometry
writer and write identical outputs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "src" / "mvsam" / "demo" / "scene"
PROMPT = "view=0,x=265,y=267"  # the red sphere (scene.json)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory, mobile_sam_checkpoint) -> dict[str, str]:
    """One user cache for every subprocess of this module, so the ONNX encoder is exported once."""
    home = tmp_path_factory.mktemp("home")
    return os.environ | {"MVSAM_HOME": str(home), "MVSAM_CHECKPOINT": str(mobile_sam_checkpoint)}


def cold_scene(root: Path, views: int = 4) -> Path:
    """A fresh copy of the first ``views`` views of the demo scene, with no cache."""
    scene = root / "scene"
    shutil.copytree(DEMO / "intrinsic", scene / "intrinsic")
    for folder, suffix in (("color", "jpg"), ("depth", "png"), ("pose", "txt")):
        (scene / folder).mkdir()
        for index in range(views):
            shutil.copy(DEMO / folder / f"{index}.{suffix}", scene / folder / f"{index}.{suffix}")
    return scene


def command(scene: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "mvsam.cli", "segment", str(scene), "--prompt", PROMPT, "--out", str(out)]


def run(scene: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command(scene, out), env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def outputs(out: Path) -> dict[str, bytes]:
    """Every output file's bytes, except report.json's timings (compared through its per-view records)."""
    import json

    files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    report = json.loads(files.pop("report.json"))
    files["report.json views"] = json.dumps([report["views"], report["iterations"], report["object_points"]])
    return files


def temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*.tmp")]


def interrupt(scene: Path, out: Path, env: dict[str, str], ready, sig: int, delay: float = 0.0):
    """Start a run, send ``sig`` ``delay`` s after ``ready()`` is true; returns the finished process."""
    process = subprocess.Popen(
        command(scene, out),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as a terminal delivers it: children inherit an ignored SIGINT, and by the time this runs in
        # the full suite something in the test process (Ray's tests run before) may have set it to ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 240
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    assert process.poll() is None, "the run finished before the stage it should be killed in"
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def concurrent(env, tmp_path_factory) -> list[tuple[subprocess.Popen, str, Path]]:
    """Two runs started together on one cold copy (and a cold user cache: both export the ONNX encoder)."""
    root = tmp_path_factory.mktemp("concurrent")
    scene = cold_scene(root)
    runs = []
    for index in range(2):
        out = root / f"out{index}"
        process = subprocess.Popen(
            command(scene, out), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        runs.append((process, out))
    return [(process, process.communicate(timeout=600)[1], out) for process, out in runs]


@pytest.fixture(scope="module")
def reference(concurrent) -> dict[str, bytes]:
    """The outputs of an uninterrupted run."""
    assert concurrent[0][0].returncode == 0, concurrent[0][1][-3000:]
    return outputs(concurrent[0][2])


def test_concurrent_runs_on_one_cold_scene_agree(concurrent):
    codes = [process.returncode for process, _, _ in concurrent]
    assert codes == [0, 0], [err[-2000:] for _, err, _ in concurrent]
    first, second = (outputs(out) for _, _, out in concurrent)
    assert first == second
    assert not temporaries(concurrent[0][2].parent)


def test_killed_runs_leave_nothing_behind(env, reference, tmp_path):
    """SIGKILL during geometry, embeddings and output writing, and Ctrl-C, each followed by a rerun; the
    last rerun completes with the reference outputs and no temporary files."""
    scene = cold_scene(tmp_path)
    cache, out = scene / ".mvsam_cache", tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "stale_from_an_old_run.png").write_bytes(b"old")

    def embeddings() -> int:
        return len(list((cache / "embeddings").rglob("*.npy")))

    def new_embedding():  # the prompted view is embedded before geometry: count from the stage's start
        before = embeddings()
        return lambda: embeddings() > before

    def masks_written() -> bool:
        try:  # the run clears the folder before writing: it may vanish between polls
            return any(p.name != "stale_from_an_old_run.png" for p in (out / "masks").glob("*.png"))
        except FileNotFoundError:
            return False

    # (stage, a function that returns when to send the signal, delay, signal); Ctrl-C first, as soon as the
    # prompted view's embedding is written (before geometry): later the rest of a 4-view run can be too short
    stages = [
        ("first embedding", new_embedding, 0.0, signal.SIGINT),
        ("geometry", lambda: lambda: (cache / "geometry" / ".lock").exists(), 0.5, signal.SIGKILL),
        ("embeddings", new_embedding, 0.0, signal.SIGKILL),
        ("writing", lambda: masks_written, 0.0, signal.SIGKILL),
    ]
    for stage, when, delay, sig in stages:
        result = interrupt(scene, out, env, when(), sig, delay)
        if sig == signal.SIGINT:
            assert result.returncode == 130, (stage, result.stderr[-2000:])
            assert "Traceback" not in result.stderr and "mvsam segment: interrupted" in result.stderr
        else:
            assert result.returncode == -signal.SIGKILL, (stage, result.stderr[-2000:])
    run(scene, out, env)
    assert outputs(out) == reference
    assert not temporaries(cache, out)
