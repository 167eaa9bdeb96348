"""A JOBS file (JSON lines) turned into validated command lines of the ``mvsam`` CLI.

One job per line: ``{"id": "fern", "command": "reconstruct", "scene": "scenes/fern", "planes": 48}``.
Keys other than ``id``, ``command`` and ``scene`` are the command's long options (``_`` or ``-``); ``true``
sets a flag, ``false`` or ``null`` leaves the option at its default, a list repeats the option. ``scene``
fills the command's positional argument. Relative paths are relative to the JOBS file's folder. Every job is
parsed by the command's own parser from :func:`mvsam.cli.build_parser` before any job runs, so a typo fails
the whole batch at once, naming its line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mvsam.cache import hash_bytes
from mvsam.errors import InputError

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RESERVED_IDS = {"status.json", "logs"}


@dataclass(frozen=True)
class Job:
    """One validated job: ``mvsam <command> <argv...>``, ``--out`` pointing at ``<batch out>/<id>``."""

    id: str
    command: str
    argv: tuple[str, ...]  # the command's arguments (after the command name), --out included
    line: int  # 1-based line in the JOBS file
    workdir: str  # the JOBS file's folder: relative paths in options resolve against it


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The CLI's subcommand parsers by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise RuntimeError("the mvsam parser has no subcommands")


def batchable(name: str, sub: argparse.ArgumentParser) -> bool:
    """A command batch can run: it writes into ``--out`` (so each job gets ``DIR/<id>``)."""
    return name != "batch" and any("--out" in action.option_strings for action in sub._actions)


def _long_options(sub: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option[2:]: action
        for action in sub._actions
        for option in action.option_strings
        if option.startswith("--") and not isinstance(action, argparse._HelpAction)
    }


def _option_argv(option: str, action: argparse.Action, value, where: str) -> list[str]:
    """``--option`` arguments for one job key; ``where`` names the job for errors."""
    if value is None:
        return []
    if action.nargs == 0:
        if not isinstance(value, bool):
            raise InputError(f"{where}: {option!r} is a flag: give true or false, not {value!r}")
        return [option] if value else []
    if isinstance(value, bool | dict):
        raise InputError(f"{where}: {option!r} takes a value, not {json.dumps(value)}")
    if isinstance(value, list):
        if isinstance(action, argparse._AppendAction):
            return [f"{option}={item}" for item in value]
        if action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 1):
            return [option, *map(str, value)]
        raise InputError(f"{where}: {option!r} takes one value, not a list")
    return [f"{option}={value}"]


def _parse(parser: argparse.ArgumentParser, argv: list[str], where: str) -> argparse.Namespace:
    """Parse with the CLI's parser; argparse's exit on bad input becomes a ValueError naming the job."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return parser.parse_args(argv)
    except SystemExit as error:
        message = stderr.getvalue().strip().splitlines()
        raise InputError(f"{where}: {message[-1] if message else error}") from None


def cache_dir_for(cache_root: Path, scene: str) -> Path:
    """A scene's ``--cache-dir`` under the batch's ``--cache-dir``: one folder per scene, for all its jobs."""
    scene = os.path.abspath(scene)
    return cache_root / f"{Path(scene).name}-{hash_bytes(scene)[:12]}"


def build_job(
    record: dict,
    parser: argparse.ArgumentParser,
    out: Path,
    base: Path,
    cache_root: Path | None,
    where: str,
    line: int,
) -> Job:
    """Validate one parsed JSON line and build its argv (module docstring); ``where`` names the line."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: a job is a JSON object, got {json.dumps(record)[:80]}")
    record = dict(record)
    job_id = record.pop("id", None)
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id) or job_id in RESERVED_IDS:
        raise InputError(
            f"{where}: 'id' must be a string of letters, digits, '.', '_', '-' (at most 100, not "
            f"{' or '.join(sorted(RESERVED_IDS))}), got {job_id!r}"
        )
    where = f"{where} (job {job_id!r})"
    command = record.pop("command", None)
    parsers = command_parsers(parser)
    runnable = sorted(name for name, sub in parsers.items() if batchable(name, sub))
    if command not in runnable:
        raise InputError(f"{where}: unknown command {command!r}; batch runs: {', '.join(runnable)}")
    sub = parsers[command]
    positionals = [action for action in sub._actions if not action.option_strings]
    options = _long_options(sub)
    argv: list[str] = []
    scene = record.pop("scene", None)
    for index, action in enumerate(positionals):
        key = "scene" if index == 0 else action.dest
        value = scene if index == 0 else record.pop(key, None)
        if not isinstance(value, str) or not value:
            raise InputError(f"{where}: {command} needs {key!r} (a path string), got {value!r}")
        argv.append(os.path.abspath(base / value) if index == 0 else value)
    if scene is not None and not positionals:
        raise InputError(f"{where}: {command} takes no scene; remove 'scene'")
    keys = {key.replace("_", "-"): key for key in record}
    if len(keys) != len(record):
        raise InputError(f"{where}: an option is given twice (with '_' and '-'): {sorted(record)}")
    for name, key in keys.items():
        if name == "out":
            raise InputError(f"{where}: 'out' is set by mvsam batch (OUT/{job_id}/); remove it")
        if name not in options:
            known = ", ".join(sorted(set(options) - {"out"}))
            raise InputError(f"{where}: {command} has no option {key!r}; options: {known}")
        argv += _option_argv(f"--{name}", options[name], record[key], where)
    argv.append(f"--out={out / job_id}")
    if cache_root is not None and "cache-dir" in options and "cache-dir" not in keys and positionals:
        argv.append(f"--cache-dir={cache_dir_for(cache_root, argv[0])}")
    args = _parse(parser, [command, *argv], where)
    if not callable(getattr(args, "run", None)):
        raise InputError(f"{where}: {command} has no runner")
    return Job(job_id, command, tuple(argv), line, str(base))


def read_jobs(
    path: str | Path, out: str | Path, cache_root: str | Path | None = None, parser=None
) -> list[Job]:
    """Every job of a JOBS file, validated; ``ValueError`` naming the line of the first bad one.

    Blank lines are skipped. ``out`` is the batch's output folder; ``cache_root`` the batch's ``--cache-dir``.
    """
    from mvsam.cli import build_parser

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JOBS file not found: {path}")
    parser = parser or build_parser()
    # Absolute, symlinks kept: on a cluster, the shared mount's path is the one every machine knows.
    out = Path(os.path.abspath(out))
    base = Path(os.path.abspath(path)).parent
    cache_root = None if cache_root is None else Path(os.path.abspath(cache_root))
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not a JSON object ({error.msg}): {text[:80]}") from None
        job = build_job(record, parser, out, base, cache_root, where, number)
        if job.id in seen:
            raise InputError(f"{where}: job id {job.id!r} already used on line {seen[job.id]}")
        seen[job.id] = number
        jobs.append(job)
    if not jobs:
        raise InputError(f"{path}: no jobs (one JSON object per line)")
    return jobs
