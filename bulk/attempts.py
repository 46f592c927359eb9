"""One call of a row: paced, retried with the policy, logged.

    caller = Caller(client=client, pacers=pacers, account="LTAI...", retry=RetryPolicy(),
                    lane=lane, log=None, stats=stats, health=Health(endpoint=url))
    tried = await caller.call(resolve("AddLiveSnapshotNotifyConfig"), params, line=2, domain="a.example.com")
    if tried.outcome is None:      # stopped (Ctrl-C, or the lane halted) before a final answer
        ...
    elif tried.reached:            # some attempt may have changed the service, whatever the answer
        ...

Every attempt waits for the pacer's admission, then goes out with the
pacer's last check at the wire. Transient answers are retried with backoff
until the policy gives up; a throttling answer also tells the pacer.
Failures that are ours and not the service's (the credential chain failing,
no connection to the endpoint) are not attempts: they are retried without
counting, and ``Health`` stops the lane once they persist. An answer that
refuses the credentials themselves stops the lane (the account's) at once:
every other call would be refused alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from .actions import Action
from .client import Failure, LiveClient, Outcome, Success
from .files import LocalFault, open_append
from .lanes import Lane
from .options import Halt, HaltKind, RunStats
from .pacing import Pacers
from .redact import redact
from .retry import RetryPolicy

__all__ = ["CallLog", "Caller", "Health", "Prepaid", "Tried"]


@dataclass(frozen=True, slots=True)
class Tried:
    """How a call ended: its last outcome (None if stopped first), the calls made, and whether any may have landed."""

    outcome: Outcome | None
    attempts: int
    reached: bool


class Prepaid:
    """The pacer admission the dispatcher took for a row's first call, usable once."""

    __slots__ = ("action",)

    def __init__(self, action: Action | None) -> None:
        self.action = action

    def use(self, action: Action) -> bool:
        """True (once) if the admission was taken for ``action``."""
        if self.action is not None and self.action.name == action.name:
            self.action = None
            return True
        return False


class Health:
    """Tells a passing hiccup on our side from a broken set-up, and halts on the latter.

    - The credential chain failing (an STS or metadata endpoint) halts after
      ``credential_failures`` failures in a row spanning ``credential_seconds``.
    - No connection to the endpoint halts after ``connect_seconds`` without a
      single answer since the run started (a wrong --endpoint, a dead proxy).
      Once the service has answered, a lost connection is an ordinary
      transient failure of the call.
    """

    __slots__ = ("_clock", "_connect_s", "_cred_n", "_cred_s", "_cred_since", "_creds_failed", "_endpoint",
                 "_first_connect_failure", "answered")

    def __init__(
        self,
        *,
        endpoint: str,
        credential_failures: int = 5,
        credential_seconds: float = 30.0,
        connect_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoint = endpoint
        self._cred_n = credential_failures
        self._cred_s = credential_seconds
        self._connect_s = connect_seconds
        self._clock = clock
        self._creds_failed = 0
        self._cred_since = 0.0
        self._first_connect_failure: float | None = None
        self.answered = False

    def ok(self, outcome: Outcome) -> None:
        """The call got as far as the service (whatever it said)."""
        self._creds_failed = 0
        if outcome.ok or (isinstance(outcome, Failure) and outcome.status is not None):
            self.answered = True

    def local_failure(self, failure: Failure) -> Halt | None:
        """A failure on our side; a Halt once it persists past the thresholds."""
        now = self._clock()
        if failure.local == "credentials":
            if self._creds_failed == 0:
                self._cred_since = now
            self._creds_failed += 1
            if self._creds_failed >= self._cred_n and now - self._cred_since >= self._cred_s:
                return Halt(HaltKind.CREDENTIALS_UNAVAILABLE,
                            f"could not obtain credentials: {self._creds_failed} failures in a row over "
                            f"{now - self._cred_since:.0f} s ({failure.message})")
            return None
        self._creds_failed = 0
        if self._first_connect_failure is None:
            self._first_connect_failure = now
        if now - self._first_connect_failure >= self._connect_s:
            return Halt(HaltKind.ENDPOINT_UNREACHABLE,
                        f"cannot connect to the endpoint {self._endpoint} ({failure.message}); nothing was sent. "
                        "Check --endpoint, the network and any proxy settings")
        return None

    def counts_as_local(self, failure: Failure) -> bool:
        """Whether a not-sent failure is retried without counting as an attempt."""
        return failure.local == "credentials" or (failure.local == "connect" and not self.answered)


class CallLog:
    """``--log-file``: one JSON line per attempt, written in batches; a write error is a LocalFault.

    Appended across resumes, never through a link, created 0600: a file that others may read is
    refused (``files.UnsafeFile``).
    """

    __slots__ = ("_buffer", "_clock", "_file", "_last", "path")

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        try:
            self._file: IO[bytes] = open_append(path)
        except OSError as exc:
            raise LocalFault(path, exc) from None
        self._buffer: list[bytes] = []
        self._clock = clock
        self._last = clock()

    def write(self, entry: Mapping[str, Any]) -> None:
        """Queue one entry; the queue is written at 200 entries or half a second after the last flush."""
        self._buffer.append(orjson.dumps(entry))
        if len(self._buffer) >= 200 or self._clock() - self._last >= 0.5:
            self.flush()

    def flush(self) -> None:
        """Write the queued entries now (LocalFault if the file cannot take them)."""
        self._last = self._clock()
        if not self._buffer:
            return
        data, self._buffer = b"\n".join(self._buffer) + b"\n", []
        try:
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            raise LocalFault(self.path, exc) from None

    def close(self) -> None:
        """Flush, then close the file even if the flush failed (its LocalFault still propagates)."""
        try:
            self.flush()
        finally:
            with contextlib.suppress(OSError):
                self._file.close()


class Caller:
    """Makes one call of a row until it has an answer worth keeping."""

    __slots__ = ("_account", "_client", "_health", "_lane", "_log", "_pacers", "_retry", "_stats")

    def __init__(
        self,
        *,
        client: LiveClient,
        pacers: Pacers,
        account: str,
        retry: RetryPolicy,
        lane: Lane,
        stats: RunStats,
        health: Health,
        log: CallLog | None = None,
    ) -> None:
        self._client = client
        self._pacers = pacers
        self._account = account
        self._retry = retry
        self._lane = lane
        self._stats = stats
        self._health = health
        self._log = log

    async def call(
        self,
        action: Action,
        params: Mapping[str, str],
        *,
        line: int,
        domain: str,
        prepaid: Prepaid | None = None,
        tried_before: int = 0,
    ) -> Tried:
        """Send until an answer worth keeping; ``Tried(None, ...)`` if stopped first.

        Worth keeping: a success, a permanent refusal, the last attempt the
        policy allows (``tried_before`` attempts of this call were already
        made), or, for a call that changes something, a failure after
        which the change may have landed: the caller must read back before
        anything is sent again, so that it is never applied twice (or, for a
        create, send it again and let the service's refusal of a second one,
        409 ConfigAlreadyExists, be what it reads back).
        """
        changes = not action.read_only
        pacer = self._pacers.get(self._account, action.name, quota=action.quota)
        attempts = local = 0
        reached = False
        if tried_before and await self._backoff(self._retry.delay(tried_before)):
            return Tried(None, 0, False)
        while True:
            if not (prepaid is not None and prepaid.use(action)):
                if self._lane.stopping:
                    return Tried(None, attempts, reached)
                await pacer.admit()
                if self._lane.stopping:
                    return Tried(None, attempts, reached)
            outcome = await self._client.call(action.name, params, at_wire=pacer.at_wire)
            self._write_log(line, domain, action.name, tried_before + attempts + local + 1, outcome)
            if isinstance(outcome, Failure) and not outcome.sent and self._health.counts_as_local(outcome):
                local += 1
                if (halt := self._health.local_failure(outcome)) is not None:
                    self._lane.stop(halt)
                    return Tried(None, attempts, reached)
                if await self._backoff(self._retry.delay(local)):
                    return Tried(None, attempts, reached)
                continue
            attempts += 1
            self._stats.answered(action.name, outcome)
            self._stats.answers["OK" if isinstance(outcome, Success) else outcome.code] += 1
            self._health.ok(outcome)
            if isinstance(outcome, Success):
                return Tried(outcome, attempts, True)
            if outcome.fatal:
                # The service refused the credentials: the call did nothing, and every other would be refused too.
                self._lane.stop(Halt(HaltKind.CREDENTIALS_REFUSED,
                                f"the service refused the credentials ({outcome.code}: {outcome.message})"))
                return Tried(None, attempts, reached)
            if outcome.throttled and pacer.throttled():  # the last attempt's answer is evidence too
                self._stats.throttling_episodes += 1
            if changes and outcome.maybe_applied:
                return Tried(outcome, attempts, True)
            if not self._retry.should_retry(outcome, tried_before + attempts):
                return Tried(outcome, attempts, reached)
            if await self._backoff(self._retry.delay(tried_before + attempts, throttled=outcome.throttled)):
                return Tried(None, attempts, reached)

    @property
    def region(self) -> str | None:
        """The RegionId the client sends with a call that names none."""
        return self._client.region

    def may_retry(self, failure: Failure, attempts: int) -> bool:
        """Whether the policy allows another attempt after ``attempts`` of one call."""
        return self._retry.should_retry(failure, attempts)

    async def wait(self, seconds: float) -> bool:
        """Wait ``seconds`` (a write that may still land); True if the lane was stopped meanwhile."""
        return await self._backoff(seconds)

    async def _backoff(self, delay: float) -> bool:
        """Sleep; True if the lane was stopped meanwhile."""
        self._stats.retrying += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lane.wait(), delay)
            return self._lane.stopping
        finally:
            self._stats.retrying -= 1

    def _write_log(self, line: int, domain: str, action: str, attempt: int, outcome: Outcome) -> None:
        if self._log is None:
            return
        entry: dict[str, Any] = {
            "time": time.time(), "line": line, "domain": domain, "action": action, "attempt": attempt,
            "ok": outcome.ok, "latency_ms": round(outcome.latency * 1000, 1),
            "request_id": outcome.request_id, "status": outcome.status,
        }
        if isinstance(outcome, Failure):
            entry.update(code=outcome.code, message=redact(outcome.message), transient=outcome.transient)
        self._log.write(entry)
