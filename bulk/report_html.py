"""``bulk report CK --html report.html``: the run as one page to look at, not read.

    with Checkpoint.open_readonly(Path("domains.csv.add-live-snapshot-notify-config.ckpt")) as ckpt:
        write_html(ckpt, Path("report.html"))      # MissingExtra (exit 2) without bulk[report]

One self-contained file, opened without a network: inline SVG charts
(``bulk.charts``), inline CSS, no script. It shows the run's timeline from
the checkpoint's per-second aggregates (``bulk.timeline``): calls per
second per action against the quota, answers by code, throttling episodes
(shaded; seconds with throttling answers, one apart at most, are one
episode), latency percentiles and rows finished; then the summary and the
rows that need attention (failed, invalid, unknown). Messages come through
``bulk.redact`` as in every report, and everything is HTML-escaped. Written
whole, 0600, by ``files.atomic_file``. A long run is drawn in bins of
several seconds (at most ``_POINTS`` of them): sums become per-second
averages, latencies the worst second of the bin.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from .charts import draw, times
from .checkpoint import Checkpoint
from .files import write_atomic
from .report import report_rows
from .timeline import OK_CODE, Second

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["Episode", "episodes", "render_html", "write_html"]

_POINTS = 600  #: at most this many points per line: longer runs are binned
_CODES = 6  #: codes drawn on their own; the rest are "other"
_LISTED = 1000  #: rows listed at most; the rest are in `bulk report --failed-only`
_CSS = """body{font:14px system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}td.n{text-align:right}svg{max-width:100%;height:auto}.note{color:#666}"""


class Episode:
    """One throttling episode: its first and last second and the throttling answers in it."""

    __slots__ = ("answers", "first", "last")

    def __init__(self, first: int, last: int, answers: int) -> None:
        self.first, self.last, self.answers = first, last, answers


def episodes(seconds: Sequence[Second]) -> list[Episode]:
    """The throttling episodes: seconds with throttling answers at most one second apart."""
    found: list[Episode] = []
    for s in seconds:
        if not s.throttled:
            continue
        if found and s.at - found[-1].last <= 2:
            found[-1].last, found[-1].answers = s.at, found[-1].answers + s.throttled
        else:
            found.append(Episode(s.at, s.at, s.throttled))
    return found


def write_html(ckpt: Checkpoint, path: Path) -> int:
    """Write the run's page to ``path`` (atomically, 0600); return the rows listed as needing attention."""
    page, listed = render_html(ckpt)
    write_atomic(path, page.encode())
    return listed


def render_html(ckpt: Checkpoint) -> tuple[str, int]:
    """The page, and the rows it lists as needing attention."""
    meta = ckpt.meta() or {}
    seconds = ckpt.seconds()
    throttling = episodes(seconds)
    charts = _charts(seconds, throttling) if seconds else (
        '<p class="note">No timeline: this run was recorded by a bulk that kept none, or sent nothing.</p>')
    rows = []
    total = 0
    for r in report_rows(ckpt, failed_only=True):
        total += 1
        if total <= _LISTED:
            rows.append("<tr>" + "".join(
                f'<td{" class=n" if k in ("line", "attempts") else ""}>{escape(str(r[k]))}</td>'
                for k in ("line", "domain", "outcome", "error_code", "error_message", "attempts", "request_id")) +
                "</tr>")
    more = f'<p class="note">{total - _LISTED} more: <code>bulk report CK --failed-only</code></p>' \
        if total > _LISTED else ""
    failed = ("<table><tr><th>line</th><th>domain</th><th>outcome</th><th>code</th><th>message</th>"
              f"<th>attempts</th><th>request id</th></tr>{''.join(rows)}</table>{more}") if rows else \
        '<p class="note">None.</p>'
    title = f"bulk: {meta.get('action', 'run')} ({meta.get('mode', 'apply')})"
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>"
            f"{_summary(ckpt, meta, seconds, throttling)}<h2>Timeline</h2>{charts}"
            f"<h2>Rows that need attention ({total})</h2>{failed}</body></html>\n")
    return page, total


def _summary(ckpt: Checkpoint, meta: dict[str, object], seconds: Sequence[Second], throttling: list[Episode]) -> str:
    counts = {k: v for k, v in ckpt.counts().items() if v}
    calls = sum(sum(s.calls.values()) for s in seconds)
    facts: list[tuple[str, str]] = [
        ("input", str(meta.get("input_path", ""))),
        ("started", _when(meta.get("created"))),
        *((state, str(n)) for state, n in counts.items()),
        *((f"error {code}", str(n)) for code, n in ckpt.error_counts().items()),
        ("calls", str(calls)),
    ]
    if seconds:
        span = seconds[-1].at - seconds[0].at + 1
        worst = max((s.p99 for s in seconds if s.p99 is not None), default=None)
        facts += [("timeline", f"{_when(seconds[0].at)} to {_when(seconds[-1].at + 1)} ({span} s)"),
                  ("peak calls/s", str(max(sum(s.calls.values()) for s in seconds))),
                  ("quota (per account and operation)", ", ".join(sorted({f"{s.quota:g}/s" for s in seconds
                                                                          if s.quota is not None}))),
                  ("throttling", f"{sum(e.answers for e in throttling)} answer(s) in {len(throttling)} episode(s)"),
                  ("worst p99 latency", f"{worst * 1000:.0f} ms" if worst is not None else "")]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts)
    return f"<h2>Summary</h2><table>{rows}</table>"


def _charts(seconds: Sequence[Second], throttling: list[Episode]) -> str:
    width = max(1, math.ceil((seconds[-1].at - seconds[0].at + 1) / _POINTS))
    binned = _binned(seconds, width)
    # Step lines hold each bin's value until the next: one more point closes the last bin.
    at = times([b.at for b in binned] + [binned[-1].at + width])

    def steps(values: list[float]) -> list[float]:
        return [*values, values[-1]]

    actions = sorted({a for b in binned for a in b.calls})
    ranked = [c for c, _ in sum((Counter(b.codes) for b in binned), Counter()).most_common()]
    codes = ranked[:_CODES] if len(ranked) <= _CODES else ranked[:_CODES - 1]
    per = f" (mean per second over {width} s)" if width > 1 else ""

    def paint(axes: list[Axes]) -> None:
        calls, answers, latency, finished = axes
        for action in actions:
            calls.step(at, steps([b.calls.get(action, 0) / width for b in binned]), where="post", label=action)
        quota = [b.quota if b.quota is not None else math.nan for b in binned]
        calls.step(at, steps(quota), where="post", color="crimson", linestyle="--",
                   label="quota per account and operation")
        calls.set_title("Calls per second" + per, loc="left")
        stacks = [[b.codes.get(c, 0) / width for b in binned] for c in codes]
        labels = list(codes)
        if len(ranked) > len(codes):
            stacks.append([sum(n for c, n in b.codes.items() if c not in codes) / width for b in binned])
            labels.append("other")
        answers.stackplot(at, *(steps(s) for s in stacks), labels=labels, step="post",
                          colors=[_code_colour(c, i) for i, c in enumerate(labels)])
        answers.set_title("Answers by code" + per, loc="left")
        for name, values in (("p50", [b.p50 for b in binned]), ("p90", [b.p90 for b in binned]),
                             ("p99", [b.p99 for b in binned])):
            latency.step(at, steps([v * 1000 if v is not None else math.nan for v in values]), where="post",
                         label=name)
        latency.set_title("Latency (ms)" + (f", worst second of each {width} s" if width > 1 else ""), loc="left")
        finished.stackplot(at, steps([(b.finished - b.failed) / width for b in binned]),
                           steps([b.failed / width for b in binned]), labels=["ok", "failed or unknown"],
                           step="post", colors=["#4c9a2a", "#c0392b"])
        finished.set_title("Rows finished per second" + per, loc="left")
        for i, axis in enumerate(axes):
            for j, e in enumerate(throttling):
                axis.axvspan(*times([e.first, e.last + 1]), color="orange", alpha=0.15, zorder=0,
                             label="throttling episode" if i == 0 and j == 0 else None)
            axis.margins(y=0.3)  # room for the legend above the lines
            axis.set_ylim(bottom=0)
            axis.legend(loc="upper left", fontsize=7, ncols=4)
        axes[-1].set_xlabel("time (UTC)")

    return f'<figure class="timeline">{draw(paint, rows=4)}</figure>'


def _binned(seconds: Sequence[Second], width: int) -> list[Second]:
    """Seconds summed into bins ``width`` long (latencies: the bin's worst second), empty bins included."""
    if width == 1 and seconds[-1].at - seconds[0].at + 1 == len(seconds):
        return list(seconds)
    start = seconds[0].at
    bins: dict[int, list[Second]] = {}
    for s in seconds:
        bins.setdefault((s.at - start) // width, []).append(s)
    out = []
    for i in range((seconds[-1].at - start) // width + 1):
        group = bins.get(i, [])
        calls: Counter[str] = Counter()
        codes: Counter[str] = Counter()
        for s in group:
            calls.update(s.calls)
            codes.update(s.codes)
        out.append(Second(start + i * width, dict(calls), dict(codes), sum(s.throttled for s in group),
                          sum(s.finished for s in group), sum(s.failed for s in group),
                          _worst([s.p50 for s in group]), _worst([s.p90 for s in group]),
                          _worst([s.p99 for s in group]), _worst([s.max for s in group]),
                          group[-1].quota if group else None))
    return out


def _worst(values: list[float | None]) -> float | None:
    return max((v for v in values if v is not None), default=None)


def _code_colour(code: str, i: int) -> str:
    if code == OK_CODE:
        return "#4c9a2a"
    if code.startswith("Throttling"):
        return "orange"
    return ("#c0392b", "#8e44ad", "#2980b9", "#7f8c8d", "#d35400", "#16a085")[i % 6]


def _when(ts: object) -> str:
    if not isinstance(ts, int | float):
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
