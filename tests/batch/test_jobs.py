"""JOBS files become the CLI's own command lines, and every bad line is refused before anything runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mvsam.batch.jobs import cache_dir_for, read_jobs
from mvsam.cli import main


def write_jobs(folder: Path, *records) -> Path:
    path = folder / "jobs.jsonl"
    lines = [record if isinstance(record, str) else json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_argv_follows_the_cli(tmp_path):
    (tmp_path / "scenes" / "a").mkdir(parents=True)
    jobs_file = write_jobs(
        tmp_path,
        {"id": "a.1", "command": "segment", "scene": "scenes/a",
         "prompt": ["view=0,x=1,y=2", "view=1,x=3,y=4"], "box": "view=0,x0=1,y0=2,x1=30,y1=40",
         "depth_source": "sparse", "no-sfm": True, "planes": 48},
        "",
        {"id": "b", "command": "reconstruct", "scene": "/abs/b", "no_depth": False, "min_confidence": -0.5,
         "voxel_size": None, "cache_dir": "own"},
        {"id": "c", "command": "track", "scene": "clip.mp4", "prompt": ["frame=0,x=5,y=6"], "sam_every": 2},
    )  # fmt: skip
    out = tmp_path / "out"
    jobs = read_jobs(jobs_file, out, cache_root=tmp_path / "cache")
    assert [(job.id, job.command, job.line) for job in jobs] == [
        ("a.1", "segment", 1),
        ("b", "reconstruct", 3),
        ("c", "track", 4),
    ]
    scene_a = str((tmp_path / "scenes" / "a").absolute())
    assert jobs[0].argv == (
        scene_a,
        "--prompt=view=0,x=1,y=2",
        "--prompt=view=1,x=3,y=4",
        "--box=view=0,x0=1,y0=2,x1=30,y1=40",
        "--depth-source=sparse",
        "--no-sfm",
        "--planes=48",
        f"--out={out.absolute() / 'a.1'}",
        f"--cache-dir={cache_dir_for((tmp_path / 'cache').absolute(), scene_a)}",
    )
    # False/None keep defaults, negative numbers survive, a job's own --cache-dir wins over the batch's.
    assert jobs[1].argv == (
        "/abs/b",
        "--min-confidence=-0.5",
        "--cache-dir=own",
        f"--out={out.absolute() / 'b'}",
    )
    # track has no --cache-dir; its positional is VIDEO, filled from "scene"
    assert jobs[2].argv[0] == str((tmp_path / "clip.mp4").absolute())
    assert "--sam-every=2" in jobs[2].argv and not any(a.startswith("--cache-dir") for a in jobs[2].argv)
    assert jobs[0].workdir == str(tmp_path.absolute())
    # two scenes with one folder name get different cache folders
    assert cache_dir_for(tmp_path, "/x/scene") != cache_dir_for(tmp_path, "/y/scene")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"id": "a", "command": "reconstruct", "scene": "s"', "jobs.jsonl:2: not a JSON object"),
        ({"id": "a/b", "command": "reconstruct", "scene": "s"}, "'id' must be"),
        ({"id": "logs", "command": "reconstruct", "scene": "s"}, "'id' must be"),
        (
            {"id": "a", "command": "reconstruct", "scene": "s", "plane": 3},
            "reconstruct has no option 'plane'",
        ),
        ({"id": "a", "command": "reconstruct", "scene": "s", "pl": 3}, "has no option 'pl'"),
        ({"id": "a", "command": "recon", "scene": "s"}, "unknown command 'recon'; batch runs:"),
        ({"id": "a", "command": "eval", "scene": "s"}, "unknown command 'eval'"),
        ({"id": "a", "command": "batch", "scene": "s"}, "unknown command 'batch'"),
        ({"id": "a", "command": "reconstruct"}, "reconstruct needs 'scene'"),
        ({"id": "a", "command": "demo", "scene": "s"}, "demo takes no scene"),
        ({"id": "a", "command": "reconstruct", "scene": "s", "out": "x"}, "'out' is set by mvsam batch"),
        ({"id": "a", "command": "reconstruct", "scene": "s", "no_sfm": "yes"}, "'--no-sfm' is a flag"),
        ({"id": "a", "command": "reconstruct", "scene": "s", "planes": [1, 2]}, "'--planes' takes one value"),
        ({"id": "a", "command": "reconstruct", "scene": "s", "planes": "many"}, "invalid int value: 'many'"),
        ({"id": "a", "command": "segment", "scene": "s", "depth_source": "x"}, "invalid choice: 'x'"),
        (
            {"id": "a", "command": "reconstruct", "scene": "s", "planes": 4, "planes_": 5},
            "no option 'planes_'",
        ),
        ({"id": "a", "command": "reconstruct", "scene": "s", "no_sfm": True, "no-sfm": True}, "given twice"),
        ({"id": "first", "command": "reconstruct", "scene": "s"}, "job id 'first' already used on line 1"),
    ],
)
def test_bad_jobs_name_their_line(tmp_path, record, message):
    jobs_file = write_jobs(tmp_path, {"id": "first", "command": "demo"}, record)
    with pytest.raises(ValueError, match="jobs.jsonl:2") as error:
        read_jobs(jobs_file, tmp_path / "out")
    assert message in str(error.value)


def test_cli_validates_every_job_before_starting_any(tmp_path, capsys):
    good = {"id": "good", "command": "reconstruct", "scene": str(tmp_path)}
    jobs_file = write_jobs(
        tmp_path, good, {"id": "typo", "command": "reconstruct", "scene": "s", "planez": 1}
    )
    out = tmp_path / "out"
    assert main(["batch", str(jobs_file), "--out", str(out)]) == 2
    assert "jobs.jsonl:2 (job 'typo'): reconstruct has no option 'planez'" in capsys.readouterr().err
    assert not out.exists()  # nothing started, nothing written
    assert main(["batch", str(tmp_path / "missing.jsonl"), "--out", str(out)]) == 2
    assert "JOBS file not found" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("\n")
    assert main(["batch", str(tmp_path / "empty.jsonl"), "--out", str(out)]) == 2
    assert "no jobs" in capsys.readouterr().err
    jobs_file = write_jobs(tmp_path, good)
    assert main(["batch", str(jobs_file), "--out", str(out), "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err


def test_without_ray_the_message_says_how_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    jobs_file = write_jobs(tmp_path, {"id": "a", "command": "reconstruct", "scene": str(tmp_path)})
    assert main(["batch", str(jobs_file), "--out", str(tmp_path / "out")]) == 2
    assert "pip install 'mvsam[cluster]'" in capsys.readouterr().err
