"""Pacing: never more than the quota in any one-second window at the server, and as close to it as that allows.

    pacers = Pacers(30)                              # calls/s, per AccessKey and per operation
    pacer = pacers.get(access_key_id, "AddLiveSnapshotNotifyConfig")
    await pacer.admit()                              # before a call is prepared: the pace
    outcome = await client.call(action, params, at_wire=pacer.at_wire)   # the quota, at the wire
    if isinstance(outcome, Failure) and outcome.throttled:
        pacer.throttled()                            # sent at the quota: a wider margin; else one cut per episode

Two gates, because the pace and the quota are different promises.

*Admission* (``admit``) is aiolimiter's leaky bucket: ``AsyncLimiter`` holds
the bucket and its rate, and the rate is what the throttling policy moves
(``RateLimiter`` lets it change while calls wait). At full pace the rate is
``quota / (1 + margin)``. The bucket holds two calls rather than one, so a
waiter that wakes late is caught up on the next slot; with a one-call bucket
(``AsyncLimiter(1, 1/30)``) every wake-up delay is lost for good.

The *guard* (``at_wire``) is awaited by the client once the connection is
ready, right before the request is written. Between admission and the wire
lie the credential lookup, signing and, for a new connection, DNS and the
TCP and TLS handshakes (tens to hundreds of milliseconds on a real network),
so calls admitted evenly can reach the wire bunched: a call that waited for
a new connection, then calls on pooled ones. The guard looks at the actual
send times and holds a call until the ``quota``-th send before it is
``1 + margin`` seconds old: no ``1 + margin`` window of sends ever holds
more than the quota. It decides as late as it can (no await between its last
look at the clock and its return; the client then writes without one), and
a send whose process stalls right after it is counted from the end of the
stall (``_settle``), since a server on the same machine stamps it only then.

The margin is the jitter that remains between the guard's decision and the
server's count: the network's, and the server's own delay in stamping an
arrival. Up to the margin, every server window holds at most the quota;
beyond it one may hold one more (and the service answers with throttling,
below). It costs ``margin / (1 + margin)`` of the pace: the default, 12 ms,
keeps 0.988 of the quota; a network with more jitter than that wants more.

*Throttling* (``throttled``): an answer with a ``Throttling*`` code says the
account's count for this operation went over, because of us (jitter beyond
the margin) or because something else spends the same quota. Answers that
arrive within one window of an episode's first belong to that episode. Which
of the two it was, the pacer's own record of sends tells: the guard notes,
for each send, whether it was sent *at the quota*, the quota of sends before
it so recent that jitter the margin may still grow to could have put them
all in the server's second before it (the ``quota``-th send back within
``1 + widest`` seconds, and a step); ``throttled`` reads that note for the call
the calling task sent last (a context variable, as the client hands
``at_wire`` to its connector). An episode that opens with a call sent at the
quota is jitter beyond the margin: a few milliseconds of network or of the
server's stamping moved one of our sends into the next call's second. The
margin widens by ``_WIDEN`` (never past ``widest``, which keeps the guard's
pace at ``_LEAST_PACE`` of the quota, 0.975: 0.95 at the server with a share
to spare) and the pace stays where it was: cutting it would lose about ten
calls to a refusal that cost one. The margin never narrows again in a run:
the refusal it prevents costs a call and a retry's wait, more than a few
milliseconds of margin. A service that throttles at random while we are at
the quota looks the same, and takes the margin to its bound; that costs the
2.5 % the bound allows, and nothing more: at the bound an answer sent at the
quota is let be. What a jitter episode teaches is the path's, not the
operation's: the same network and the same server stamp every operation of
an account, so the widening is shared by all its pacers (``Learned``), and
an operation that reaches the quota late (the Add behind its backup read)
does not pay a refusal of its own to learn it. More answers in one episode
than jitter explains (a spike moves one or two sends over; a third is one
too many), or a call sent *under* the quota, mean something else spends the
quota: that is contention, cut as follows (and the episode's widening is
taken back, for every pacer of the account). One burst is one
cut, however many answers it brings. The cut is what the evidence says the
service sustained: of the ``n`` calls we sent in the window before the
episode, ``k`` were refused, so the pace drops to ``(n - k)`` per window, a
multiplicative decrease by the share refused (never above where it was,
never below a twentieth of the full pace). After the episode the pace climbs
back additively, by more the longer no throttling comes
(``cut + full * (t / recovery)**2``, as TCP CUBIC probes): a service that keeps throttling is
probed gently just above what it sustains, one that has stopped gives the
full pace back within ``recovery`` seconds at most. (A straight-line climb
must choose: fast enough to recover within seconds, it outruns every cut
under steady contention.) A lone throttling answer under the quota costs
about two calls. The contention policy only ever moves the admission rate;
the guard moves only by the margin, and only wider.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar

from aiolimiter import AsyncLimiter

__all__ = ["DEFAULT_MARGIN", "Learned", "Pacer", "Pacers", "RateLimiter"]

#: the share of a window the guard keeps free for jitter between its decision and the server's count
DEFAULT_MARGIN = 0.012
#: the guard remembers at most this many sends: beyond it a huge quota is kept proportionally
_GUARD_SENDS = 1024
#: seconds after a send when the loop should come round to it (see ``Pacer._settle``)
_SETTLE = 0.002
#: the lowest pace one throttling episode can cut to, as a share of the full pace
_FLOOR = 0.05
#: how much one jitter episode widens the margin (the default again: 12 -> 24 -> 36 ms, then the bound)
_WIDEN = 0.012
#: answers an episode opened at the quota may bring and still be jitter; one more is contention
_JITTER_ANSWERS = 2
#: the margin never widens past what keeps this share of the quota at the guard
_LEAST_PACE = 0.975
#: the last send of the calling task: its pacer, and whether the window ending there was at the quota
_LAST_SEND: ContextVar[tuple[Pacer, bool] | None] = ContextVar("bulk_last_send", default=None)


class RateLimiter(AsyncLimiter):
    """``AsyncLimiter`` whose rate can be changed while calls wait on it.

    aiolimiter computes its drip rate once, in ``__init__``. Setting ``rate``
    first drains the bucket at the old rate up to now, then switches, then
    re-times the first waiter, so the change takes effect from this instant
    and never retroactively. The bucket keeps its size (``burst`` calls).
    """

    __slots__ = ()

    def __init__(self, rate: float, *, burst: float = 2) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        super().__init__(burst, burst / rate)

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self._rate_per_sec

    @rate.setter
    def rate(self, value: float) -> None:
        """Change the rate from this instant on (see the class docstring); it must be positive."""
        if value <= 0:
            raise ValueError("rate must be positive")
        if value == self._rate_per_sec:
            return
        self._leak()
        self._rate_per_sec = value
        self.time_period = self.max_rate / value
        self._wake_next()


class Learned:
    """The widening of the margin an account's pacers have learned from jitter, shared by all of them."""

    __slots__ = ("widening",)

    def __init__(self) -> None:
        #: added to each pacer's given margin (each keeps its own bound)
        self.widening = 0.0


class Pacer:
    """Pace and quota for one (AccessKey, operation): see the module docstring."""

    __slots__ = (
        "quota", "_margin", "widest", "_full_rate", "recovery", "_limiter", "_clock", "_sent", "_span", "_window",
        "_settling", "_timer", "_opened", "_base", "_seen", "_answers", "_widened", "_cut", "_cut_at", "_given",
        "_learned", "_followed",
    )

    def __init__(
        self,
        quota: float,
        *,
        margin: float = DEFAULT_MARGIN,
        recovery: float = 5.0,
        clock: Callable[[], float] | None = None,
        learned: Learned | None = None,
    ) -> None:
        """``learned``: the jitter widening this pacer shares with the other operations of its account."""
        if quota <= 0:
            raise ValueError("quota must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be in [0, 1)")
        if recovery <= 0:
            raise ValueError("recovery must be positive")
        self.quota = quota
        self.recovery = recovery
        # The guard: at most n sends in any `window` seconds. For a quota under 1/s that is
        # one send per 1/quota s; for a huge one, a proportional share of the second.
        n = min(max(1, math.floor(quota)), _GUARD_SENDS)
        self._span = 1.0 if n == math.floor(quota) else n / quota
        self._sent: deque[list[float]] = deque(maxlen=n)  # send times, each in a cell _settle may move
        self._settling: deque[list[float]] = deque()  # the sends _settle has yet to come round to, oldest first
        self._timer: asyncio.TimerHandle | None = None  # _settle's, while a send waits for it
        #: the widest the margin may grow, by jitter episodes (never narrower than the margin given)
        self.widest = max(margin, n / (_LEAST_PACE * quota * self._span) - 1)
        self._given = margin
        self._learned = Learned() if learned is None else learned
        self._followed = 0.0  # the widening the margin was last set from
        self._follow()
        self._limiter = RateLimiter(self._full_rate)
        # aiolimiter runs on the loop's clock, so the guard and the policy do too unless told otherwise:
        # the running loop's, taken when first read (asking for the running loop costs a system call each time).
        self._clock = clock
        self._opened: float | None = None  # when the current (or last) throttling episode began
        self._base = self._seen = 0.0      # its pace before the cut, and our sends in the window before it
        self._answers = 0                  # throttling answers in it
        self._widened: float | None = None  # how much it widened the margin, if it was jitter (else None)
        self._cut: float | None = None     # the pace it cut to; None once recovered
        self._cut_at = 0.0                 # when the climb back starts (the episode's end)

    def _now(self) -> float:
        if self._clock is None:
            self._clock = asyncio.get_running_loop().time
        return self._clock()

    def _follow(self) -> None:
        """Take up the widening the account's pacers have learned (within this pacer's bound)."""
        self._followed = self._learned.widening
        self._set_margin(min(self._given + self._followed, self.widest))

    def _set_margin(self, margin: float) -> None:
        """The guard's window and the full pace for this margin (admission follows at the next ``admit``)."""
        self._margin = margin
        self._window = self._span * (1 + margin)
        self._full_rate = (self._sent.maxlen or 1) / self._window

    @property
    def margin(self) -> float:
        """The share of a window the guard keeps free for jitter now (the account's learned widening included)."""
        if self._learned.widening != self._followed:
            self._follow()
        return self._margin

    @property
    def full_rate(self) -> float:
        """The admission pace with no throttling to follow, in calls per second: the quota less the margin."""
        if self._learned.widening != self._followed:
            self._follow()
        return self._full_rate

    @property
    def rate(self) -> float:
        """The admission pace now, in calls per second."""
        return self._rate_at(self._now())

    def _rate_at(self, now: float) -> float:
        if self._learned.widening != self._followed:
            self._follow()
        cut = self._cut
        if cut is None:
            return self._full_rate
        climb = now - self._cut_at
        if climb <= 0:
            return cut
        rate = cut + self._full_rate * (climb / self.recovery) ** 2
        if rate >= self._full_rate:
            self._cut = None
            return self._full_rate
        return rate

    async def admit(self) -> None:
        """Wait for this call's turn at the current pace."""
        self._limiter.rate = self._rate_at(self._now())
        await self._limiter.acquire()

    def ready(self) -> bool:
        """Whether ``admit()`` would return at once (so a caller need not prepare to be interrupted)."""
        self._limiter.rate = self._rate_at(self._now())
        return not self._limiter._waiters and self._limiter.has_capacity()

    async def at_wire(self) -> None:
        """Wait until sending now keeps every window of sends within the quota, then count the send.

        Awaited right before the request is written; returns without yielding when there is room.
        """
        sent = self._sent
        now = self._now()
        while len(sent) == sent.maxlen and (wait := sent[0][0] + self._window - now) > 0:
            await asyncio.sleep(wait)
            now = self._now()
        # Noted now, while the guard remembers the sends before it: the answer may come many sends later.
        # (One step past the widest margin: at full pace there, the guard lets a send go a hair after it.)
        horizon = self._span * (1 + self.widest + _WIDEN)
        _LAST_SEND.set((self, len(sent) == sent.maxlen and sent[0][0] > now - horizon))
        send = [now]
        sent.append(send)
        self._settling.append(send)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(_SETTLE, self._settle)

    def _settle(self) -> None:
        """Count each send from later by however late the loop came round to it.

        A send counts from when the request actually left, as far as this process can
        tell. If the process stalls right after the decision, the request leaves (a body
        is written by a task of aiohttp's own, a turn later on Python 3.11) and a server
        on the same machine reads and stamps it only after the stall: counting the send
        from the decision would squeeze a later window at the server. A timer set a
        little after the decision (a loopback request is stamped well within it) fires
        late by the length of the stall, and the send is counted that much later.
        One timer serves the pacer: it is set for the oldest send not come round to, and
        settles every send whose own moment has come (in one turn of the loop, as timers
        of their own would all have fired), then is set for the next. The sends stay in order.
        """
        now = self._now()
        settling = self._settling
        send = settling.popleft()  # the one the timer was set for
        send[0] = max(send[0], now - _SETTLE)
        while settling and settling[0][0] <= now - _SETTLE:
            send = settling.popleft()
            send[0] = now - _SETTLE
        self._timer = (asyncio.get_running_loop().call_later(settling[0][0] + _SETTLE - now, self._settle)
                       if settling else None)

    def throttled(self) -> bool:
        """The service answered the calling task's last call with a throttling code; True if it opened an episode.

        Sent at the quota, the first answer of an episode widens the margin; otherwise the pace is cut,
        once per episode, by the evidence (see the module docstring).
        """
        now = self._now()
        if self._learned.widening != self._followed:
            self._follow()
        last = _LAST_SEND.get()
        at_quota = last is not None and last[0] is self and last[1]
        if self._opened is None or now - self._opened >= self._window:
            self._opened = now
            self._base = self._rate_at(now)
            self._seen = sum(1 for (t,) in self._sent if t > now - self._window)
            self._answers = 0
            self._widened = None
            if at_quota:
                # Jitter beyond the margin: widen it and keep the pace (the full pace follows the margin).
                self._widened = min(self._margin + _WIDEN, self.widest) - self._margin
                self._learned.widening += self._widened
                self._follow()
                self._answers = 1
                self._limiter.rate = self._rate_at(now)
                return True
            opens = True
        else:
            opens = False
            if self._widened is not None:
                if self._answers < _JITTER_ANSWERS:
                    self._answers += 1  # a jitter spike can move two sends over (or a random answer come with one)
                    return False
                # More answers than jitter gives: not sends jittered over, but the quota spent elsewhere.
                self._learned.widening -= self._widened
                self._follow()
                self._widened = None
        self._answers += 1
        sustained = max(self._seen - self._answers, 0) / self._window
        self._cut = max(_FLOOR * self._full_rate, min(self._base, sustained))
        self._cut_at = self._opened + self._window
        self._limiter.rate = self._cut  # a call already waiting to be admitted waits at the new pace
        return opens


class Pacers:
    """One pacer per (AccessKey, operation): the quota is per account and per operation."""

    __slots__ = ("_quota", "_margin", "_recovery", "_clock", "_pacers", "_learned")

    def __init__(
        self,
        quota: float,
        *,
        margin: float = DEFAULT_MARGIN,
        recovery: float = 5.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._quota = quota
        self._margin = margin
        self._recovery = recovery
        self._clock = clock
        self._pacers: dict[tuple[str, str], Pacer] = {}
        self._learned: dict[str, Learned] = {}

    def get(self, account: str, action: str, *, quota: float | None = None) -> Pacer:
        """The pacer of this AccessKey and operation, made when first asked for.

        ``quota`` is the operation's own (``Action.quota``), when it has one:
        it replaces the one every other operation shares. The account's
        pacers share what they learn of the jitter (``Learned``).
        """
        key = (account, action)
        pacer = self._pacers.get(key)
        if pacer is None:
            pacer = self._pacers[key] = Pacer(
                self._quota if quota is None else quota, margin=self._margin, recovery=self._recovery,
                clock=self._clock, learned=self._learned.setdefault(account, Learned()),
            )
        return pacer
