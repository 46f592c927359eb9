"""One exception base for the library, carrying the exit code the command gives it.

    try:
        result = await bulk.run(options, client=client)
    except bulk.BulkError as exc:
        print(f"bulk: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

Every error bulk raises on purpose (a bad option, an input it refuses, a
checkpoint in use, a full disk) is a ``BulkError`` whose message says what
to do and whose ``exit_code`` says how a script should react. Anything else
that escapes the library is a bug, which the command reports as exit 70;
the command therefore catches ``BulkError`` alone, never ``ValueError`` or
``KeyError``, so that a bug cannot pass for a usage error.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

__all__ = ["BulkError", "Exit", "UsageError"]


class Exit(IntEnum):
    """The command's exit codes (the README's table)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 3
    BUSY = 4
    SAFETY_STOP = 5
    INTERNAL = 70


class BulkError(Exception):
    """An error bulk raises on purpose; ``exit_code`` is what the command exits with."""

    exit_code: ClassVar[Exit] = Exit.USAGE


class UsageError(BulkError, ValueError):
    """An option, argument or setting bulk cannot work with; nothing was sent."""
