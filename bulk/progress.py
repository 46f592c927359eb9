"""Showing a run as it goes: a live bar on a terminal, a plain ``key=value`` line for cron.

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
    TimeElapsedColumn,
)

from .options import RunStats

__all__ = ["plain_line", "show_progress"]


def plain_line(stats: RunStats) -> str:
    """One progress line for a log or a pipe, ``key=value`` words to grep: rows by outcome, retries, pace, ETA."""
    eta = stats.eta
    return (
        f"bulk: progress rows={stats.finished}/{stats.total} done={stats.done} skipped={stats.skipped} "
        f"failed={stats.failed} invalid={stats.invalid} unknown={stats.unknown} retrying={stats.retrying} "
        f"calls_per_s={stats.pace:.1f} elapsed_s={stats.elapsed:.0f}" + (f" eta_s={eta:.0f}" if eta else "")
    )


def _eta(stats: RunStats) -> str:
    """The bar's ETA, in rows (``RunStats.eta``): ``-:--:--`` until a row settled."""
    eta = stats.eta
    if eta is None:
        return "-:--:--"
    seconds = round(eta)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("{task.fields[pace]:.1f} calls/s"),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("done {task.fields[done]} · failed {task.fields[failed]} · invalid {task.fields[invalid]} · "
                   "retrying {task.fields[retrying]}"),
    )

    def frame() -> None:
        """Draw the counts as they are now."""
        progress.update(task, total=stats.total, completed=stats.finished, pace=stats.pace, eta=_eta(stats),
                        done=stats.done + stats.skipped, failed=stats.failed, invalid=stats.invalid,
                        retrying=stats.retrying)
        progress.refresh()

    with Progress(*columns, console=Console(file=stream), auto_refresh=False) as progress:
        task = progress.add_task("bulk", total=stats.total, pace=0.0, eta="", done=0, failed=0, invalid=0,
                                 retrying=0)
        try:
            while True:
                frame()
                await asyncio.sleep(0.25)
        finally:
            frame()  # the last frame is the run's final count
