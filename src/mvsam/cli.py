"""The ``mvsam`` command: one subcommand per module in ``mvsam.commands``.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int`` and calls only
the public Python API.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mvsam import __version__
from mvsam.errors import InputError

# Order here is the order shown in ``mvsam --help``.
COMMAND_MODULES = [
    "mvsam.commands.demo",
    "mvsam.commands.weights",
    "mvsam.commands.eval",
    "mvsam.commands.track",
    "mvsam.commands.reconstruct",
    "mvsam.commands.segment",
    "mvsam.commands.export",
    "mvsam.commands.batch",
    "mvsam.commands.serve",
    "mvsam.commands.auto",
]


class _DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a meaningful default not already named."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _CommandParser(argparse.ArgumentParser):
    """Subcommand parsers show option defaults in ``--help`` (choices are shown by argparse itself)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mvsam", description="Segment Anything masks that agree across many views of one scene."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print debug logging")
    parser.add_argument("--version", action="version", version=f"mvsam {__version__}")
    subparsers = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser
    )
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
    except (InputError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        # User mistakes: one line. Other exceptions are bugs and keep their traceback.
        print(f"mvsam {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mvsam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
