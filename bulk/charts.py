"""Charts as inline SVG, drawn by matplotlib: the pictures of ``bulk report --html`` and the receiver's drain page.

    svg = draw(lambda axes: axes[0].plot(times(seconds), values), rows=1)   # MissingExtra (exit 2) without it
    html = f"<figure>{svg}</figure>"                   # no network, no script: an <svg> element

Why matplotlib: it is the plotting library every Python user knows, kept
for two decades, and its SVG backend writes static vector pictures that
open anywhere without a script or a network. It is heavy (numpy), and the
core CLI does not need it, so it is the optional extra ``bulk[report]``.
Text stays text in the SVG (``svg.fonttype: none``), so the pages are small
and searchable; the pyplot state machine is never used, so a receiver can
draw in a worker thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["EXTRA", "MissingExtra", "draw", "times"]

#: how to install what the pictures need
EXTRA = "pip install 'bulk[report]'"



class MissingExtra(UsageError):
    """matplotlib is not installed: the pictures need the ``bulk[report]`` extra."""

    def __init__(self) -> None:
        super().__init__(f"the HTML pictures need matplotlib, which is not installed: {EXTRA}")


def draw(paint: Callable[[list[Axes]], None], *, rows: int, height: float = 2.4) -> str:
    """Charts ``rows`` high, one above the other on a shared time axis, drawn by ``paint``, as an ``<svg>``
    element to put inline in a page (no XML prolog, no doctype). MissingExtra without matplotlib."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingExtra() from None
    out = io.StringIO()
    # Text stays text (small, searchable pages); fixed ids: the same data draws the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "bulk", "font.size": 9, "axes.grid": True,
                                "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}):
        figure = Figure(figsize=(10, height * rows), layout="constrained")
        axes = list(figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0])
        for axis in axes:
            axis.xaxis_date(UTC)
        paint(axes)
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg"):]


def times(seconds: Sequence[float]) -> list[float]:
    """Epoch seconds as matplotlib's dates (``draw`` labels its time axis as UTC times of day)."""
    try:
        from matplotlib.dates import date2num
    except ImportError:
        raise MissingExtra() from None
    return [float(date2num(datetime.fromtimestamp(s, UTC))) for s in seconds]  # type: ignore[no-untyped-call]
