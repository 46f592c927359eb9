"""What a receiver counts, shown as JSON (``/_bulk/stats``) and as Prometheus metric families (``/metrics``).

    tally = Tally(started_at=time.time(), generations=ring.names)
    tally.accept("a.example.com", "keys-2026-10", now=time.time())
    tally.rejected["unknown_domain"] += 1
    families = tally.families(ring, guard)     # read by the receiver's registry (``bulk.callbacks.metrics``)

Counts: accepted callbacks per (domain, generation) with the time of the
last one, rejected ones per reason, duplicates (identical to one already
forwarded), keys-file reloads, keys files left out (by file and reason),
downstream failures and the connections the guard closed. Labels name
generations, domains, files and reasons, never a key.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from .guard import ConnectionGuard
from .keyring import KeyRing
from .series import AcceptSeries

__all__ = ["CLOSE_REASONS", "Tally"]

#: why the guard closed a connection (see ``bulk.callbacks.guard``)
CLOSE_REASONS = ("header_timeout", "body_timeout", "idle_timeout", "evicted", "refused")


class Tally:
    """A receiver's counts since it started."""

    __slots__ = ("accepted", "duplicates", "files_rejected", "forward_failures", "last_reload_error", "last_seen",
                 "loaded_at", "rejected", "reloads", "series", "started_at")

    def __init__(self, *, started_at: float, generations: Iterable[str]) -> None:
        self.started_at = started_at
        #: generation -> when this receiver first loaded it
        self.loaded_at: dict[str, float] = dict.fromkeys(generations, started_at)
        self.accepted: collections.Counter[tuple[str, str]] = collections.Counter()
        #: (domain, generation) -> time of the last accepted callback
        self.last_seen: dict[tuple[str, str], float] = {}
        self.rejected: collections.Counter[str] = collections.Counter()
        self.reloads: collections.Counter[str] = collections.Counter()
        self.last_reload_error: str | None = None
        #: (keys file name, kind) -> how many loads left it out
        self.files_rejected: collections.Counter[tuple[str, str]] = collections.Counter()
        self.forward_failures = 0
        self.duplicates = 0
        #: accepted callbacks per generation per minute, for the drain page
        self.series = AcceptSeries()

    def accept(self, domain: str, generation: str, *, now: float) -> None:
        """Count a callback whose signature matched ``generation``'s key of ``domain``."""
        self.accepted[(domain, generation)] += 1
        self.last_seen[(domain, generation)] = now
        self.series.add(generation, now=now)

    def generations(self, ring: KeyRing) -> list[dict[str, Any]]:
        """The loaded generations: name, file, column, domains, when first loaded, the file's SHA-256."""
        return [{"name": g.name, "file": g.path.name, "column": g.column, "domains": len(g.keys),
                 "loaded_at": self.loaded_at[g.name], "sha256": g.sha256} for g in ring.generations]

    def stats(self, ring: KeyRing, guard: ConnectionGuard | None, *, now: float) -> dict[str, Any]:
        """Everything as one JSON-ready dict."""
        per_generation: collections.Counter[str] = collections.Counter()
        domains: dict[str, dict[str, dict[str, float]]] = {}
        for (domain, generation), count in sorted(self.accepted.items()):
            per_generation[generation] += count
            seen = {"count": count, "last_seen": self.last_seen[(domain, generation)]}
            domains.setdefault(domain, {})[generation] = seen
        return {
            "now": now,
            "started_at": self.started_at,
            "generations": self.generations(ring),
            "accepted": {g: per_generation[g] for g in sorted({*ring.names, *per_generation})},
            "domains": domains,
            "rejected": dict(self.rejected),
            "duplicates": self.duplicates,
            "reloads": {"ok": self.reloads["ok"], "failed": self.reloads["failed"]},
            "last_reload_error": self.last_reload_error,
            "rejected_files": [
                {"file": r.file, "kind": r.kind, "reason": r.reason, "kept_current_keys": r.kept,
                 "count": self.files_rejected[(r.file, r.kind)]}
                for r in ring.rejected
            ],
            "forward_failures": self.forward_failures,
            "connections": {"open": guard.open if guard else 0, "closed": dict(guard.closed) if guard else {}},
        }

    def families(self, ring: KeyRing, guard: ConnectionGuard | None) -> list[Metric]:
        """The counts as Prometheus metric families (what ``/metrics`` serves, through ``bulk.callbacks.metrics``)."""
        accepted = CounterMetricFamily("bulk_receiver_callbacks_accepted_total",
                                       "Callbacks whose signature matched, by key generation and domain.",
                                       labels=("generation", "domain"))
        last_seen = GaugeMetricFamily("bulk_receiver_callback_last_seen_timestamp_seconds",
                                      "Unix time of the last accepted callback, by key generation and domain.",
                                      labels=("generation", "domain"))
        for (domain, generation), count in sorted(self.accepted.items()):
            accepted.add_metric((generation, domain), count)
            last_seen.add_metric((generation, domain), self.last_seen[(domain, generation)])
        rejected = CounterMetricFamily("bulk_receiver_callbacks_rejected_total", "Callbacks refused, by reason.",
                                       labels=("reason",))
        for reason, count in sorted(self.rejected.items()):
            rejected.add_metric((reason,), count)
        duplicates = CounterMetricFamily("bulk_receiver_callbacks_duplicate_total",
                                         "Callbacks identical to one already forwarded within the clock-skew window "
                                         "(answered 200, not forwarded again).", value=self.duplicates)
        domains = GaugeMetricFamily("bulk_receiver_generation_domains", "Domains in each loaded keys file.",
                                    labels=("generation",))
        loaded = GaugeMetricFamily("bulk_receiver_generation_loaded_timestamp_seconds",
                                   "Unix time at which this receiver first loaded each key generation.",
                                   labels=("generation",))
        for g in ring.generations:
            domains.add_metric((g.name,), len(g.keys))
            loaded.add_metric((g.name,), self.loaded_at[g.name])
        reloads = CounterMetricFamily("bulk_receiver_key_reloads_total",
                                      "Keys file reloads, by result (failed: a file was left out, or nothing loaded).",
                                      labels=("result",))
        for result in ("ok", "failed"):
            reloads.add_metric((result,), self.reloads[result])
        files = CounterMetricFamily("bulk_receiver_keys_files_rejected_total",
                                    "Keys files left out of a load, by file name and reason (untrusted, unreadable, "
                                    "malformed, duplicate); the other files load.", labels=("file", "reason"))
        for (file, kind), count in sorted(self.files_rejected.items()):
            files.add_metric((file, kind), count)
        failures = CounterMetricFamily("bulk_receiver_forward_failures_total",
                                       "Accepted callbacks that the downstream did not take (answered 502).",
                                       value=self.forward_failures)
        connections = GaugeMetricFamily("bulk_receiver_connections_open", "Connections open on the callback port.",
                                        value=guard.open if guard else 0)
        closed = CounterMetricFamily("bulk_receiver_connections_closed_total",
                                     "Connections the receiver closed: past a deadline, or to make room at the cap "
                                     "(evicted).", labels=("reason",))
        for reason in CLOSE_REASONS:
            closed.add_metric((reason,), guard.closed[reason] if guard else 0)
        return [accepted, last_seen, rejected, duplicates, domains, loaded, reloads, files, failures, connections,
                closed]
