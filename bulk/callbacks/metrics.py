"""Counts kept elsewhere, exposed in the Prometheus text format by prometheus-client.

    registry = private_registry(lambda: tally.families(ring, guard))
    exposition(registry)    # b"# HELP bulk_receiver_callbacks_accepted_total ...\\n# TYPE ... counter\\n..."

prometheus-client writes the format (escaping, number spelling, ``_total``
on counters) as every Python exporter does, so that a scraper or
``promtool check metrics`` reads it like any other. The counts themselves
stay where they are kept (a receiver's ``Tally``, a run's result): a
collector reads them at scrape time and hands over metric families (a
"custom collector" in prometheus-client's terms), so ``/metrics``,
``/_bulk/stats`` and the drain answer can never disagree. Each owner gets
a registry of its own: two receivers in one process never share a metric,
and the library's global registry (with its process and platform
collectors) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Families", "exposition", "private_registry"]

#: the Content-Type of ``exposition``'s text (format 0.0.4, which every Prometheus reads)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: what a collector is made of: a function giving the metric families as they are now
Families = Callable[[], Iterable[Metric]]


class _Snapshot(Collector):
    """A collector that asks its owner for the families at every collection."""

    __slots__ = ("_families",)

    def __init__(self, families: Families) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        """The owner's families, as they are now."""
        return self._families()


def private_registry(families: Families) -> CollectorRegistry:
    """A registry of its own that collects ``families()`` at each exposition, and nothing else."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format (version 0.0.4)."""
    return generate_latest(registry)
