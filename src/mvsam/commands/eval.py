"""``mvsam eval BENCHMARK --data DIR``: benchmark runners, one module each.

Each benchmark module defines ``add_eval_parser(subparsers)`` that adds its own subparser and sets
``run``; register it by adding its module name to ``BENCHMARK_MODULES``.
"""

from __future__ import annotations

import importlib

BENCHMARK_MODULES: list[str] = [
    "mvsam.evaluate.davis",
    "mvsam.evaluate.dtu",
    "mvsam.evaluate.geometry",
    "mvsam.evaluate.nvos",
    "mvsam.evaluate.spinnerf",
    "mvsam.evaluate.auto",
]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="run a benchmark and print a table (and write JSON)")
    benchmarks = parser.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for module_name in BENCHMARK_MODULES:
        importlib.import_module(module_name).add_eval_parser(benchmarks)
