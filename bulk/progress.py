"""Showing a run as it goes: a live bar on a terminal, a plain line for cron.

    async with show_progress(stats, mode="auto"):
        await engine.run(options, client=client, stats=stats)

The engine only counts (``RunStats``); this module only reads those counts
on a timer, so display costs nothing on the hot path and nothing here can
see a parameter value, let alone a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from .options import RunStats

__all__ = ["plain_line", "show_progress"]


def plain_line(stats: RunStats) -> str:
    """One progress line for a log or a pipe: rows by outcome, retries, pace and an ETA."""
    remaining = stats.total - stats.finished
    pace = stats.pace
    eta = f", ETA {remaining / pace:.0f} s" if pace > 0 and remaining else ""
    return (
        f"bulk: {stats.finished}/{stats.total} rows (done {stats.done}, skipped {stats.skipped}, "
        f"failed {stats.failed}, invalid {stats.invalid}, unknown {stats.unknown}), retrying {stats.retrying}, "
        f"{pace:.1f} calls/s{eta}"
    )


@contextlib.asynccontextmanager
async def show_progress(
    stats: RunStats, *, mode: str = "auto", stream: TextIO | None = None, every: float = 5.0
) -> AsyncIterator[None]:
    """mode: "auto" (bar on a terminal, plain lines otherwise), "bar", "plain" or "quiet"."""
    stream = stream or sys.stderr
    if mode == "auto":
        mode = "bar" if stream.isatty() else "plain"
    if mode == "quiet":
        yield
        return
    task = asyncio.create_task(_bar(stats, stream) if mode == "bar" else _plain(stats, stream, every))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _plain(stats: RunStats, stream: TextIO, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        print(plain_line(stats), file=stream, flush=True)


async def _bar(stats: RunStats, stream: TextIO) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pace]:.1f} calls/s"),
        TimeRemainingColumn(),
        TextColumn("done {task.fields[done]} · failed {task.fields[failed]} · retrying {task.fields[retrying]}"),
    )
    with Progress(*columns, console=Console(file=stream), auto_refresh=False) as progress:
        task = progress.add_task("bulk", total=stats.total, pace=0.0, done=0, failed=0, retrying=0)
        try:
            while True:
                progress.update(
                    task, total=stats.total, completed=stats.finished, pace=stats.pace,
                    done=stats.done + stats.skipped, failed=stats.failed + stats.invalid, retrying=stats.retrying,
                )
                progress.refresh()
                await asyncio.sleep(0.25)
        finally:
            progress.update(task, completed=stats.finished)
            progress.refresh()
