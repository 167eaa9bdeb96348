"""CLI subcommands, one module each (see ``mvsam.cli``)."""
