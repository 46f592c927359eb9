"""What every job shares: ``RowCalls`` (one row's calls), the ``Job`` protocol, and the read-back helpers.

    calls = RowCalls(caller, row, prepaid)
    current = await calls.read(row.action)    # the live state, a Failure, or None (stopped)

The helpers turn a read that did not answer into what to record
(``_unread``, ``_unknown``), so every job decides such rows alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from ..actions import Action, normalize_domain
from ..attempts import Caller, Prepaid, Tried
from ..backup import Backup
from ..checkpoint import RowOutcome, RowState
from ..client import Failure, Success
from ..rows import WorkRow

__all__ = ["Job", "RowCalls"]

#: a read that does not show the domain's key: whether it holds the row's cannot be learnt from it
KEY_NOT_SHOWN = "KeyNotShown"

#: the domain is not the account's (or not in the region asked): nothing of it can be held
_NO_DOMAIN = "InvalidDomain.NotFound"
#: answers that prove the service cannot hold the row's change: no read-back needed to say failed
_CANNOT_HOLD = frozenset({_NO_DOMAIN, "MissingParam", "MalformedParam"})


class RowCalls:
    """One row's calls: each through the Caller, counted, the first one on the dispatcher's admission."""

    __slots__ = ("_caller", "_count_reads", "_prepaid", "attempts", "reached", "row")

    def __init__(self, caller: Caller, row: WorkRow, prepaid: Prepaid, *, count_reads: bool = False) -> None:
        self._caller = caller
        self._prepaid = prepaid
        self._count_reads = count_reads
        self.row = row
        #: calls that sent the row's change (or, for a job that only reads, its reads)
        self.attempts = 0
        #: a changing call of this run may have reached the service
        self.reached = False

    async def call(self, action: Action, params: Mapping[str, str], *, tried_before: int = 0) -> Tried:
        """One call of the row through the Caller; a changing call counts as an attempt that may have landed."""
        tried = await self._caller.call(action, params, line=self.row.line, domain=self.row.domain,
                                        prepaid=self._prepaid, tried_before=tried_before)
        if not action.read_only:
            self.attempts += tried.attempts
            self.reached = self.reached or tried.reached
        elif self._count_reads:
            self.attempts += tried.attempts
        return tried

    def may_retry(self, failure: Failure, attempts: int) -> bool:
        """Whether the retry policy lets this row try again after ``failure``."""
        return self._caller.may_retry(failure, attempts)

    async def wait(self, seconds: float) -> bool:
        """Wait ``seconds``; True if the run was stopped meanwhile."""
        return await self._caller.wait(seconds)

    @property
    def region(self) -> str | None:
        """The RegionId the row's calls go to: its own, else the client's default."""
        return self.row.params.get("RegionId") or self._caller.region

    @property
    def may_have_landed(self) -> bool:
        """A changing call of this row, in this run or an earlier one, may have reached the service."""
        return self.row.reached or self.reached

    async def read(self, action: Action) -> dict[str, str] | Failure | None:
        """The live state ``action`` changes; the Failure if unreadable; None if stopped."""
        return await self.state(_reader(action))

    async def state(self, reader: Action) -> dict[str, str] | Failure | None:
        """The row's domain as the read-only ``reader`` shows it; the Failure if unreadable; None if stopped.

        An answer that cannot be the domain's state (``_state_of``) is read again while the policy allows.
        """
        params = {"DomainName": self.row.domain}
        if region := self.row.params.get("RegionId"):
            params["RegionId"] = region  # the row's region, for its read as for its change
        tries = 0
        while True:
            tried = await self.call(reader, params, tried_before=tries)
            tries += tried.attempts
            if tried.outcome is None or isinstance(tried.outcome, Failure):
                return tried.outcome
            state = _state_of(reader, tried.outcome, self.row.domain)
            if isinstance(state, dict) or not self._caller.may_retry(state, tries):
                return state


class Job(Protocol):
    """What a run does with each row: one class per mode (``make_job`` picks it)."""

    @property
    def reads_only(self) -> bool:
        """True for a job that only reads (plan, verify): its reads are the row's attempts."""

    def first_call(self, row: WorkRow) -> Action:
        """The action of the row's first call: the dispatcher takes its pacer admission."""

    async def run(self, row: WorkRow, calls: RowCalls) -> RowOutcome | None:
        """Take the row to an outcome; None when stopped or when a read-back is to be retried next run."""


def _expected(action: Action, params: Mapping[str, str]) -> dict[str, str]:
    """What the read-back action shows once ``action`` has set ``params`` ("" for a field it clears)."""
    if action.expect is None:
        raise ValueError(f"{action.name} has no read-back")
    return action.expect(params)


def _state_of(reader: Action, answer: Success, domain: str) -> dict[str, str] | Failure:
    """The state ``reader``'s answer shows of ``domain``; a transient BadResponse for an answer that cannot
    be it: another domain's, or a field that is neither a string nor null (never its value: it may be a key)."""
    body = answer.body
    named = body.get("DomainName")
    odd = [f for f in reader.returns if body.get(f) is not None and not isinstance(body[f], str)]
    if odd:
        why = f"{', '.join(odd)} not a string"
    elif named and normalize_domain(str(named)) != domain:
        why = f"answered for another domain ({str(named)[:253]!r})"
    else:
        state = _with_default(reader, reader.read(body))
        if (hidden := _hidden_key(reader, state)) is None:
            return state
        # The service does not show the key (masked, or left out while auth is on): no read of it can tell
        # whether a key is ours, so it is no transient fault either.
        return Failure(KEY_NOT_SHOWN, f"{reader.name} of {domain} does not show {hidden} (masked or left out): "
                       "bulk cannot tell which key the domain holds", answer.status, answer.request_id, False,
                       answer.latency)
    return Failure("BadResponse", f"{reader.name} of {domain}: {why}; not taken for its state", answer.status,
                   answer.request_id, True, answer.latency)


def _with_default(reader: Action, state: dict[str, str]) -> dict[str, str]:
    """``state`` with the auth switch of an existing config at its documented default (``no``) where the
    answer leaves it out: the config a create without it makes, as the comparison expects it."""
    pair = reader.family.create.auth_pair if reader.family is not None else None
    if pair is not None and not state.get(pair[0]) and reader.exists(state):
        state[pair[0]] = "no"
    return state


def _hidden_key(reader: Action, state: Mapping[str, str]) -> str | None:
    """The key field ``state`` does not show, if any: a value that is no key (``****``), or none while its
    switch is on (the docs require a key then)."""
    family = reader.family
    if family is None or (rotation := family.rotation) is None:
        return None
    if key := state.get(rotation.key, ""):
        param = next(p for p in family.create.params if p.name == rotation.key)
        return rotation.key if param.check(key) is not None else None
    return rotation.key if state.get(rotation.switch) == "yes" else None


def _exists(action: Action, current: Mapping[str, str]) -> bool:
    return _reader(action).exists(current)


def _wanting(backup: Backup | None, row: WorkRow, current: Mapping[str, str] | None = None) -> Backup | None:
    """``backup`` if it wants ``row``'s state recorded before the row's first write, else None
    (``current``: the state a read shows, without the row's change: ``Backup.wants``)."""
    return backup if backup is not None and backup.wants(row.domain, reached=row.reached, current=current) else None


def _reader(action: Action) -> Action:
    """The action that reads back what ``action`` changes (a run that reads first checks it has one)."""
    if action.reader is None:
        raise ValueError(f"{action.name} changes nothing: it has no read-back")
    return action.reader


def _unread(action: Action, outcome: Failure | None, *, reached: bool, fresh: bool = False) -> RowOutcome | None:
    """The read before sending did not answer: stopped or left to the next run (None), unknown, or failed.

    Nothing was sent in this run. A row that may have landed before is
    ``_unknown``. Otherwise the domain may hold the change already (it may
    have been there before): a transient failure leaves the row to the next
    run, and a refused read leaves it unknown, naming the read. Only where
    the change cannot be there (``fresh``: a rotation's new keys; an answer
    such as InvalidDomain.NotFound) is the row failed, with nothing sent.
    """
    if outcome is None:
        return None
    if reached:
        return _unknown(action, outcome, outcome)
    if fresh or outcome.code in _CANNOT_HOLD:
        return RowOutcome.failed(_reader(action).name, outcome, "cannot read the current config; nothing was sent")
    if outcome.transient:
        return None
    return RowOutcome(RowState.UNKNOWN, _reader(action).name, outcome.code,
                      f"cannot read the current config ({outcome.message}); nothing was sent, and whether the "
                      "domain holds the change already is unknown", outcome.status, outcome.request_id)


def _unknown(action: Action, failure: Failure, read: Failure | None) -> RowOutcome | None:
    """A call failed and the read-back that would tell whether the service holds the change did not answer.

    Stopped, or a transient read failure: record nothing yet (the row stays
    pending, or ``sending`` if a change may have landed) and let the next run
    read again. A refused read (say, no permission to Describe) cannot settle
    it: the row is ``unknown``, recorded with the refusal (the read action and
    its code), which counts towards the safety stop like any other refusal.
    Only a domain the service does not know (InvalidDomain.NotFound) shows it
    cannot hold the change: a read refused for its own parameters says
    nothing of the write.
    """
    if read is None or read.transient:
        return None
    if read.code == _NO_DOMAIN:  # a read refused for its own parameters says nothing of the write
        return RowOutcome.failed(_reader(action).name, read, "the read-back shows the service cannot hold it")
    said = f"{action.name} answered {failure.code}" if failure is not read else "an earlier write may have landed"
    how = "could not tell" if read.code == KEY_NOT_SHOWN else "was refused"
    return RowOutcome(RowState.UNKNOWN, _reader(action).name, read.code,
                      f"{said}, and the read-back {how} ({read.message}): whether the service holds the "
                      "change is unknown", read.status, read.request_id)
