"""Where a run stops: one stop scope per account, nested under the run's, like trio's cancel scopes.

    run = Lane()                          # the whole run
    a, b = run.child(), run.child()       # one per account: each handed to its Caller and its Dispatcher
    a.stop(Halt(HaltKind.SAFETY_STOP, "safety stop on Forbidden.RAM ...", code="Forbidden.RAM"))
    a.stopping, b.stopping, run.stopping  # (True, False, False): the other accounts go on
    b.stop(Halt(HaltKind.LOCAL_FAULT, "cannot write d.ckpt: No space left on device"))
    run.stopping, run.halt.kind           # (True, HaltKind.LOCAL_FAULT): every lane stops

A lane owns its stop event, the first halt given to it and its parent.
Stopping a lane stops every lane below it and none beside it; a halt that
is not about the lane's own account (``HaltKind.per_account`` is false: a
local fault, an endpoint that never answers) stops its parent too, and so
the whole run. The first halt given to a lane is the one it reports, so a
later, consequential stop never hides the cause. Whoever holds a lane (the
caller that paces and retries a row's calls, the dispatcher that starts
rows) stops it and waits on it alike, and stopping can be tested without
either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from .options import Halt

__all__ = ["Lane"]


class Lane:
    """A stop scope: its stop event, the first halt given to it, its parent and the lanes below it."""

    __slots__ = ("_children", "_event", "halt", "parent")

    def __init__(self, parent: Lane | None = None) -> None:
        """A lane of its own (a run's), or one below ``parent`` (stopped at once if the parent is)."""
        self.parent = parent
        #: why the lane stopped: the first halt given to it (None: not stopped, or stopped from above)
        self.halt: Halt | None = None
        self._event = asyncio.Event()
        self._children: list[Lane] = []
        if parent is not None:
            parent._children.append(self)
            if parent.stopping:
                self._event.set()

    def child(self) -> Lane:
        """A new lane below this one."""
        return Lane(self)

    @property
    def stopping(self) -> bool:
        """Whether this lane (or one above it) was stopped."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Return once the lane is stopped."""
        await self._event.wait()

    def stop(self, halt: Halt | None = None) -> None:
        """Stop this lane and every lane below it; ``halt`` says why.

        The first halt given is kept. One that is not about this lane's
        account alone stops the parent too, with the same halt.
        """
        if halt is not None:
            if self.halt is None:
                self.halt = halt
            if self.parent is not None and not halt.kind.per_account:
                self.parent.stop(halt)
        self._stop_below()

    def _stop_below(self) -> None:
        # Once set, every lane below is set too: a child made later is stopped as it is made.
        if self._event.is_set():
            return
        self._event.set()
        for child in self._children:
            child._stop_below()

    @contextlib.contextmanager
    def following(self, event: asyncio.Event | None) -> Iterator[Lane]:
        """This lane, stopped once ``event`` is set (a signal's), while the block runs."""
        if event is None:
            yield self
            return
        if event.is_set():
            self.stop()

        async def follow() -> None:
            """Stop the lane once the event is set."""
            await event.wait()
            self.stop()

        following = asyncio.ensure_future(follow())
        try:
            yield self
        finally:
            following.cancel()
