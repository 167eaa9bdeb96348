"""The one exception type for user mistakes.

``InputError`` (a ``ValueError``) means "the input is wrong and the message says how to fix it": a bad
file, an unknown view, an option out of range. The CLI prints it as one line and exits with status 2.
Any other exception is a bug in mvsam and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: the message names the file or value and the fix."""
