"""Simulated live streams: snapshot callbacks signed with the key of the last push.

    streams = LiveStreams(StreamsConfig(count=20, uptime_mean=0.4, interval=0.05, seed=1),
                          notify_configs=sim.notify_configs, callback_auth=sim.callback_auth)
    await streams.start()          # each stream POSTs to its domain's NotifyUrl every `interval`
    ...
    await streams.stop()

Stream i runs on the i-th configured domain (round robin over the domains
that have a NotifyUrl, sorted, when it first starts) and stays on it. At
every push it reads its domain's config once: the NotifyUrl, and the key it
signs with until the next push (a new key takes effect only when a stream
is pushed again). The key: SetSnapshotCallbackAuth's CallbackAuthKey when
CallbackReqAuth is yes, else the notify config's NotifyAuthKey when
NotifyReqAuth is yes, else none (callbacks go unsigned). The docs describe
one header scheme for both and no precedence between them; this order is
this simulator's choice. A push lasts an exponential, seeded uptime of mean
``uptime_mean``; the stream is pushed again at once.

Each callback is a POST with ``ALI-LIVE-TIMESTAMP`` and
``ALI-LIVE-SIGNATURE`` and a JSON body with the fields of a stored snapshot
(DomainName, AppName, StreamName, OssEndpoint, OssBucket, OssObject,
CreateTime, named as DescribeLiveStreamSnapshotInfo names them). Only
loopback NotifyUrls are posted to unless ``allow_remote``: a rehearsal never
reaches a real host; refused callbacks are counted, not sent. Redirects are
never followed (a 3xx is counted as the answer), so a loopback receiver
cannot lead a stream past that check.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from ..callbacks.signature import host_of, sign

__all__ = ["LiveStreams", "StreamsConfig", "is_loopback", "snapshot_body", "uptimes"]

log = logging.getLogger("bulk.sim.streams")

_OSS_BUCKET = "bulk-sim-snapshots"
_OSS_ENDPOINT = "oss-cn-shanghai.aliyuncs.com"
#: how often a stream that found no configured domain looks again
_IDLE_S = 0.2


@dataclass(frozen=True, slots=True)
class StreamsConfig:
    """How many simulated streams, how long each push lasts, how often it calls back, and where it may post."""

    count: int
    #: mean seconds between pushes of one stream
    uptime_mean: float = 3600.0
    #: seconds between two snapshot callbacks of one stream
    interval: float = 5.0
    seed: int | None = None
    #: post to NotifyUrls that are not loopback addresses
    allow_remote: bool = False
    app_name: str = "live"
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError(f"stream count must be 0 or more, got {self.count}")
        if self.uptime_mean <= 0 or self.interval <= 0:
            raise ValueError("stream uptime mean and interval must be more than 0")


def is_loopback(url: str) -> bool:
    """True when the URL's host is ``localhost`` or a loopback address (no name is resolved)."""
    host = host_of(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uptimes(seed: int | None, index: int, mean: float) -> Iterator[float]:
    """Stream ``index``'s successive uptimes: the same for the same seed, whatever the timing."""
    rng = random.Random(f"{seed}:{index}") if seed is not None else random.Random()
    while True:
        yield rng.expovariate(1.0 / mean)


def snapshot_body(domain: str, app: str, stream: str, when: float) -> bytes:
    """A snapshot callback's JSON body, with the fields of a stored snapshot taken at ``when``."""
    stamp = int(when)
    return orjson.dumps({
        "DomainName": domain,
        "AppName": app,
        "StreamName": stream,
        "OssEndpoint": _OSS_ENDPOINT,
        "OssBucket": _OSS_BUCKET,
        "OssObject": f"snapshot/{app}/{stream}/{stamp}.jpg",
        "CreateTime": datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


@dataclass(frozen=True, slots=True)
class _Push:
    """What a stream reads from its domain's config when it is pushed, and keeps until the next push."""

    domain: str
    url: str | None
    key: str | None


class LiveStreams:
    """The simulator's live streams: signed snapshot callbacks to configured NotifyUrls (module docstring)."""

    __slots__ = ("config", "_notify", "_auth", "_wall", "_tasks", "_session", "_stopping", "_pushes", "_sent",
                 "_answers", "_errors", "_skipped")

    def __init__(
        self,
        config: StreamsConfig,
        *,
        notify_configs: Mapping[str, Mapping[str, str]],
        callback_auth: Mapping[str, Mapping[str, str]],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """``notify_configs`` and ``callback_auth``: lower-case domain -> config, read at every push."""
        self.config = config
        self._notify = notify_configs
        self._auth = callback_auth
        self._wall = wall_clock
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._pushes = 0
        self._sent = 0
        self._answers: collections.Counter[int] = collections.Counter()
        self._errors = 0
        self._skipped: collections.Counter[str] = collections.Counter()

    async def start(self) -> None:
        """Start one task per stream; a stream waits until some domain has a NotifyUrl."""
        self._stopping.clear()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(self.config.count)]

    async def stop(self) -> None:
        """Let callbacks in flight get their answers (so that every one sent is counted), then stop."""
        self._stopping.set()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=self.config.timeout + 1.0)
            for task in late:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def stats(self) -> dict[str, Any]:
        """Counters for the simulator's stats: streams, pushes, callbacks sent, answers by status, errors, skips."""
        return {
            "streams": len(self._tasks),
            "pushes": self._pushes,
            "sent": self._sent,
            "answers": {str(status): n for status, n in sorted(self._answers.items())},
            "errors": self._errors,
            "skipped": dict(self._skipped),
        }

    def _domain_for(self, index: int) -> str | None:
        configured = sorted(d for d, c in self._notify.items() if c.get("NotifyUrl"))
        return configured[index % len(configured)] if configured else None

    def _push(self, domain: str) -> _Push:
        notify = self._notify.get(domain) or {}
        auth = self._auth.get(domain) or {}
        if auth.get("CallbackReqAuth") == "yes":
            key = auth.get("CallbackAuthKey") or None
        elif notify.get("NotifyReqAuth") == "yes":
            key = notify.get("NotifyAuthKey") or None
        else:
            key = None
        url = notify.get("NotifyUrl") or None
        if url is not None and not self.config.allow_remote and not is_loopback(url):
            log.warning("stream on %s: NotifyUrl host %s is not a loopback address; not posting (allow_remote is off)",
                        domain, host_of(url))
        return _Push(notify.get("DomainName", domain), url, key)

    async def _run(self, index: int) -> None:
        name = f"stream-{index:03d}"
        domain = None
        loop = asyncio.get_running_loop()
        for uptime in uptimes(self.config.seed, index, self.config.uptime_mean):
            while domain is None:
                domain = self._domain_for(index)
                if domain is None and await self._stopped_after(_IDLE_S):
                    return
            push = self._push(domain)
            self._pushes += 1
            end = loop.time() + uptime
            while True:
                await self._callback(push, name)
                left = end - loop.time()
                if await self._stopped_after(min(self.config.interval, max(left, 0.0))):
                    return
                if left <= self.config.interval:
                    break

    async def _stopped_after(self, seconds: float) -> bool:
        """Sleep; True as soon as the streams are stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    async def _callback(self, push: _Push, stream: str) -> None:
        session = self._session
        if session is None:
            return  # stopping
        if push.url is None:
            self._skipped["no_config"] += 1
            return
        if not self.config.allow_remote and not is_loopback(push.url):
            self._skipped["not_loopback"] += 1
            return
        now = self._wall()
        headers = {"Content-Type": "application/json"}
        if push.key is not None:
            headers.update(sign(host_of(push.url), push.key, now=lambda: now))
        self._sent += 1
        try:
            # No redirects: a loopback NotifyUrl must not lead a rehearsal to another host.
            async with session.post(
                push.url, data=snapshot_body(push.domain, self.config.app_name, stream, now), headers=headers,
                allow_redirects=False,
            ) as resp:
                await resp.read()
                self._answers[resp.status] += 1
        except (aiohttp.ClientError, TimeoutError):
            self._errors += 1
