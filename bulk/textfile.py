"""A run's own metrics, left for node_exporter's textfile collector (``--metrics-textfile``).

    textfile = RunTextfile(Path("/var/lib/prometheus/node-exporter/bulk-rotate.prom"), command="rotate")
    textfile.result = result            # the engine's RunResult, once the run has one
    textfile.write(exit_code)           # replaces the file by rename: the collector never reads half of it

A cron job or a Kubernetes CronJob has no port to scrape: it leaves its
numbers in a file that node_exporter's textfile collector serves with the
node's own metrics. One file per job; a run replaces it whole, so each
value is about the last run (gauges, not counters): rows by outcome as the
checkpoint holds them at the end, this run's calls by answer ("OK" or the
error code), the throttling episodes it met, its pace and duration, its
exit code and when it finished. Every sample carries ``command`` (run,
rollback, rotate, or rotate-prepare) and ``textfile`` (the file's name
without ``.prom``), so that the files of several jobs in one directory
never give node_exporter two samples with the same labels.

Why mode 0644 where every other file of bulk's is 0600: node_exporter runs
as its own user (``prometheus`` on Debian) and must read the file, and it
serves whatever it reads to anyone who scrapes the node. The file holds
counts, error codes and the command's name: nothing secret, nothing a
narrower mode would protect. It is written like every other file
(``bulk.files``: a temporary file beside it, synced, renamed over it,
never through a planted link).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .callbacks.metrics import exposition, private_registry
from .files import write_atomic
from .options import RunResult

__all__ = ["MODE", "OUTCOMES", "RunTextfile", "families"]

#: the textfile's mode: node_exporter, another user, reads it (see above)
MODE = 0o644
#: the row outcomes always written, 0 or not, so that an alert on one never sees it vanish
OUTCOMES = ("done", "skipped", "failed", "invalid", "unknown", "conflict", "pending", "sending")


class RunTextfile:
    """Where a command leaves its metrics, and what it has learnt so far."""

    __slots__ = ("_clock", "_monotonic", "_started", "command", "path", "result")

    def __init__(self, path: Path, *, command: str, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.command = command
        #: the engine's result; None when the command ended before a run (a usage error, a refused gate)
        self.result: RunResult | None = None
        self._clock = clock
        self._monotonic = monotonic
        self._started = monotonic()

    def write(self, exit_code: int) -> None:
        """Replace the file with this command's metrics (LocalFault if it cannot be written)."""
        name = self.path.name.removesuffix(".prom")
        metrics = families(self.result, command=self.command, textfile=name, exit_code=exit_code,
                           duration=self._monotonic() - self._started, finished=self._clock())
        write_atomic(self.path, exposition(private_registry(lambda: metrics)), mode=MODE)


def families(result: RunResult | None, *, command: str, textfile: str, exit_code: int, duration: float,
             finished: float) -> list[Metric]:
    """A command's metrics: rows by outcome, calls by answer, throttling, pace, duration, exit code, end time."""
    labels = ("command", "textfile")
    own = (command, textfile)

    def gauge(name: str, help: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, help, labels=labels)
        family.add_metric(own, value)
        return family

    rows = GaugeMetricFamily("bulk_run_rows", "Rows by outcome in the run's checkpoint when the command ended.",
                             labels=(*labels, "outcome"))
    counts = result.counts if result else {}
    for outcome in (*OUTCOMES, *sorted(set(counts) - set(OUTCOMES))):
        rows.add_metric((*own, outcome), counts.get(outcome, 0))
    calls = GaugeMetricFamily("bulk_run_calls", 'Calls this command made, by answer: "OK", or the error code.',
                              labels=(*labels, "code"))
    for code, count in sorted((result.answers if result else {}).items()):
        calls.add_metric((*own, code), count)
    return [
        rows,
        calls,
        gauge("bulk_run_throttling_episodes", "Throttling episodes this command met (each cut the pace once).",
              result.throttling_episodes if result else 0),
        gauge("bulk_run_pace_calls_per_second", "Calls per second over the run's sending.",
              result.pace if result else 0.0),
        gauge("bulk_run_duration_seconds", "Seconds from the command's start to its end.", duration),
        gauge("bulk_run_exit_code", "The command's exit code (0 done; 1 rows failed; 2 usage or refused; "
              "3 interrupted, resume; 4 busy; 5 safety stop; 70 bug; 130 aborted).", exit_code),
        gauge("bulk_run_last_finished_timestamp_seconds", "Unix time at which the command ended.", finished),
    ]
