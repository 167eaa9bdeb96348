"""Pieces of the runner that need no Ray: settings checks, error lines, the stage read from a log."""

from __future__ import annotations

import pytest

from mvsam.batch.runner import BatchSettings, _ray_error_line, _tail_line


def test_settings_are_checked(tmp_path):
    for bad, message in [
        ({"workers": 0}, "--workers"),
        ({"cpus_per_job": 0}, "--cpus-per-job"),
        ({"memory_per_job_gb": 0}, "--memory-per-job"),
        ({"retries": -1}, "--retries"),
    ]:
        with pytest.raises(ValueError, match=message):
            BatchSettings(out=tmp_path, **bad)


def test_ray_error_line_keeps_the_root_cause():
    error = RuntimeError(
        "\x1b[36mray::run_job()\x1b[39m (pid=1, ip=127.0.0.1)\n  File x\nModuleNotFoundError: mvsam\n"
    )
    assert _ray_error_line(error) == "RuntimeError: ModuleNotFoundError: mvsam"


def test_stage_is_the_last_printed_line(tmp_path):
    log = tmp_path / "job.log"
    assert _tail_line(log, 0) == ""
    log.write_text("old attempt\n=== job a attempt 2 on host pid 1\n")
    offset = len("old attempt\n")
    assert _tail_line(log, offset) == "started"
    with open(log, "a") as handle:
        handle.write("depth:  10%|#  | 2/20\rdepth:  50%|#####  | 10/20\r")
    assert _tail_line(log, offset) == "depth:  50%|#####  | 10/20"
