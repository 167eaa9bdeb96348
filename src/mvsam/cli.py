"""The ``mvsam`` command: one subcommand per module in ``mvsam.commands``.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int`` and calls only
the public Python API.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Order here is the order shown in ``mvsam --help``.
COMMAND_MODULES = [
    "mvsam.commands.demo",
    "mvsam.commands.weights",
    "mvsam.commands.eval",
    "mvsam.commands.track",
    "mvsam.commands.reconstruct",
    "mvsam.commands.segment",
    "mvsam.commands.auto",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mvsam", description="Segment Anything masks that agree across many views of one scene."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"mvsam {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
