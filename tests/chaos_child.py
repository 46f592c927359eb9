"""The chaos test's child process: ``bulk ARGV`` exactly as a shell would run it, forked by a forkserver.

    process = context.Process(target=chaos_child.bulk, args=(argv, started))

A module of its own that imports nothing of the tests: a forkserver child first imports the module its target
comes from, and the test module's imports (pytest, and Hypothesis through conftest) cost each child some
0.23 s of CPU, more than the whole run it then makes.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event


def bulk(argv: list[str], started: Event) -> None:
    """Run the `bulk` command with ``argv``; set ``started`` first. Never returns: exits with its code."""
    from bulk.cli import main

    sys.argv = ["bulk", *argv]
    started.set()
    try:
        main()
    except SystemExit as exc:
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    os._exit(0)
