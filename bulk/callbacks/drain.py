"""When may an old key generation go? Asked of the receivers that see the callbacks.

    window = check_window(parse_window("24h"), snapshot_interval=parse_window("1h"))
    report = await query_drain(["http://127.0.0.1:8081"], generation="keys-2026-10", window=window)
    if report.drained:
        retire("keys-2026-10.csv")
    else:
        print(report.still_on)        # domain -> seconds since its last callback signed with keys-2026-10

A new key takes effect only when a stream is pushed again: a stream that
stays up keeps signing with the old key. A generation has drained when

- a newer generation (one whose name sorts after it) is loaded, so there
  is something to move to;
- the receiver has watched the generation for at least the window (a
  receiver that restarted an hour ago knows nothing of the day before);
- and no callback signed with it arrived within the window.

The window must be at least one snapshot interval (``check_window``): a
stream that is up calls back once per interval, so a shorter window can
fall between two callbacks of a stream still on the old keys and call it
drained. The default floor is the longest interval the service allows
(``SNAPSHOT_INTERVAL_MAX``, one hour); the docs ask for at least the
longest stream's uptime. A window always carries its unit: a bare ``24``
is refused rather than read as 24 seconds. "Since the rotation" means since the
receiver first loaded the oldest of the newer generations: domains of the
old or newer keys files with no callback at all since then are listed as
unseen. They do not hold the answer back (a domain without a live stream
has nothing to drain), but they are worth a look. With several receivers
behind a load balancer, ask them all: the answers merge (still-on domains
add up, unseen ones are those no receiver saw).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..errors import BulkError
from ..redact import error_kind

__all__ = [
    "SNAPSHOT_INTERVAL_MAX", "DrainError", "DrainReport", "UnknownGeneration", "assess", "check_window", "merge",
    "parse_window", "query_drain",
]

#: the longest snapshot interval a snapshot template may set (5 to 3600 s): the default floor of a window
SNAPSHOT_INTERVAL_MAX = 3600.0
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])\s*", re.IGNORECASE)
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DrainError(BulkError):
    """A receiver could not be asked, or could not answer."""


class UnknownGeneration(DrainError):
    """The receiver has no such generation loaded."""


def parse_window(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d`` -> seconds (more than 0); a bare number is refused (ValueError)."""
    match = _DURATION.fullmatch(text)
    if match is None or float(match[1]) <= 0:
        unit = " with its unit" if text.strip().replace(".", "", 1).isdigit() else ""
        raise ValueError(f"window must be a positive duration{unit} such as 90s, 30m, 24h or 7d, got {text!r}")
    return float(match[1]) * _UNITS[match[2].lower()]


def check_window(window: float, *, snapshot_interval: float = SNAPSHOT_INTERVAL_MAX) -> float:
    """``window`` if it covers at least one snapshot interval, else ValueError saying why it must."""
    if window < snapshot_interval:
        raise ValueError(f"a window of {window:g} s is shorter than the snapshot interval ({snapshot_interval:g} s): "
                         "a stream still on the old keys could call back just outside it and look drained; give at "
                         "least the snapshot interval, better the longest stream's uptime (e.g. 24h)")
    return window


@dataclass(frozen=True, slots=True)
class DrainReport:
    """One receiver's (or, merged, every receiver's) answer on whether an old generation has drained."""

    generation: str
    window: float
    #: loaded generations that sort after this one
    newer: tuple[str, ...]
    #: seconds the receiver has had this generation loaded (the shortest, across receivers)
    watched: float
    #: domain -> seconds since its last callback signed with this generation, within the window
    still_on: Mapping[str, float] = field(default_factory=dict)
    #: domains of this or a newer generation with no callback at all since the rotation
    unseen: tuple[str, ...] = ()
    #: seconds since the receiver first loaded a newer generation (None: none loaded)
    since_rotation: float | None = None

    @property
    def drained(self) -> bool:
        """A newer generation is loaded, watched for the whole window, and no domain still signs with this one."""
        return bool(self.newer) and self.watched >= self.window and not self.still_on

    def blockers(self) -> list[str]:
        """Why the generation has not drained, one sentence each (empty when it has)."""
        reasons = []
        if not self.newer:
            reasons.append(
                f"no generation newer than {self.generation} is loaded: give the receiver the new keys first")
        if self.watched < self.window:
            reasons.append(f"the receiver has watched {self.generation} for {self.watched:.1f} s, "
                           f"less than the {self.window:g} s window: ask again later")
        if self.still_on:
            reasons.append(f"{len(self.still_on)} domain(s) still on {self.generation}")
        return reasons

    def to_json(self) -> dict[str, Any]:
        """The report as ``/_bulk/drain`` and ``bulk callback drain --json`` give it."""
        return {
            "generation": self.generation, "window": self.window, "newer": list(self.newer), "watched": self.watched,
            "still_on": dict(self.still_on), "unseen": list(self.unseen), "since_rotation": self.since_rotation,
            "drained": self.drained,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DrainReport:
        """A report read back from ``to_json``'s shape (a receiver's answer)."""
        return cls(
            generation=str(data["generation"]), window=float(data["window"]), newer=tuple(data["newer"]),
            watched=float(data["watched"]), still_on={str(k): float(v) for k, v in data["still_on"].items()},
            unseen=tuple(data["unseen"]),
            since_rotation=None if data["since_rotation"] is None else float(data["since_rotation"]),
        )


def assess(
    *,
    generation: str,
    window: float,
    now: float,
    domains: Mapping[str, frozenset[str]],
    loaded_at: Mapping[str, float],
    last_seen: Mapping[tuple[str, str], float],
) -> DrainReport:
    """One receiver's answer. ``domains``: generation -> its domains; ``loaded_at``: generation ->
    when this receiver first loaded it; ``last_seen``: (domain, generation) -> last accepted callback."""
    if generation not in domains:
        loaded = ", ".join(sorted(domains)) or "none"
        raise UnknownGeneration(f"generation {generation} is not loaded (loaded: {loaded})")
    newer = tuple(sorted(g for g in domains if g > generation))
    still_on = {d: now - t for (d, g), t in last_seen.items() if g == generation and now - t <= window}
    unseen: tuple[str, ...] = ()
    rotated_at = min((loaded_at[g] for g in newer), default=None)
    if rotated_at is not None:
        seen = {d for (d, _), t in last_seen.items() if t >= rotated_at}
        expected = domains[generation].union(*(domains[g] for g in newer))
        unseen = tuple(sorted(expected - seen))
    return DrainReport(
        generation=generation, window=window, newer=newer, watched=now - loaded_at[generation],
        still_on=dict(sorted(still_on.items())), unseen=unseen,
        since_rotation=None if rotated_at is None else now - rotated_at,
    )


def merge(reports: Iterable[DrainReport]) -> DrainReport:
    """Several receivers' answers as one: drained only if drained everywhere."""
    reports = list(reports)
    if not reports:
        raise ValueError("no reports to merge")
    first = reports[0]
    still_on: dict[str, float] = {}
    for report in reports:
        for domain, age in report.still_on.items():
            still_on[domain] = min(age, still_on.get(domain, age))
    newer = set(first.newer).intersection(*(r.newer for r in reports))
    unseen = set(first.unseen).intersection(*(r.unseen for r in reports))
    rotations = [r.since_rotation for r in reports if r.since_rotation is not None]
    return DrainReport(
        generation=first.generation, window=first.window, newer=tuple(sorted(newer)),
        watched=min(r.watched for r in reports), still_on=dict(sorted(still_on.items())),
        unseen=tuple(sorted(unseen)), since_rotation=min(rotations) if len(rotations) == len(reports) else None,
    )


async def _ask(session: aiohttp.ClientSession, url: str, generation: str, window: float,
               headers: dict[str, str]) -> DrainReport:
    endpoint = f"{url.rstrip('/')}/_bulk/drain"
    try:
        async with session.get(endpoint, params={"generation": generation, "window": str(window)},
                               headers=headers) as resp:
            if resp.status == 401:
                raise DrainError(f"receiver {url} wants its admin token (--admin-token-file or $BULK_ADMIN_TOKEN)"
                                 if not headers else f"receiver {url} refused the admin token")
            body = await resp.json(content_type=None)
            if resp.status == 404:
                raise UnknownGeneration(f"receiver {url}: {body.get('error', 'unknown generation')}")
            if resp.status != 200:
                raise DrainError(f"receiver {url} answered HTTP {resp.status}: {body.get('error', '')}")
            return DrainReport.from_json(body)
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, AttributeError) as exc:
        raise DrainError(f"cannot ask receiver {url}: {error_kind(exc)}") from None


async def query_drain(receivers: Sequence[str], *, generation: str, window: float, timeout: float = 10.0,
                      token: str | None = None) -> DrainReport:
    """Ask every receiver's admin listener about ``generation`` and merge their answers.
    ``token``: the admin listener's bearer token, if it asks for one."""
    if not receivers:
        raise ValueError("give at least one receiver URL")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        reports = await asyncio.gather(*(_ask(session, url, generation, window, headers) for url in receivers))
    return merge(reports)
