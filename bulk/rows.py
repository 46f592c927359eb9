"""A run's rows: read from the input once to be recorded, and again, each by its byte offset, to be sent.

    source = RowSource(options)
    source.ingest(ckpt)                               # every row recorded, pending or invalid, with its offset
    for batch in source.to_send(ckpt, profile=None):  # the rows still to send, their values read again
        ...                                           # [WorkRow(line=2, domain="a.example.com", ...), ...]

A row takes few shapes, each made here or by the checkpoint: ``inputs.Row``
(or ``BadRow``) as read, recorded as it is (``Checkpoint.add_rows``);
``checkpoint.TodoRow``, what the checkpoint says is still to do; ``WorkRow``,
what is sent; ``checkpoint.RowOutcome``, what is recorded.

Secrets are never stored, so a row's values are read from the input again
when it is sent, at the byte offset recorded at ingest: a resume reads only
what is left to send. The input's SHA-256, checked before (``bulk.prepare``),
proves it is the file that was ingested. A checkpoint written before offsets
were recorded is joined with one pass over the input instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from .actions import Action, recorded_action
from .checkpoint import ANY_PROFILE, Checkpoint, RowOutcome, RowState, TodoRow
from .inputs import BadRow, Row, read_rows, read_rows_at
from .options import RunOptions

__all__ = ["RowSource", "WorkRow"]


@dataclass(frozen=True, slots=True)
class WorkRow:
    """A row to send: validated parameters (secrets included, never stored) and what the checkpoint knows."""

    line: int
    domain: str
    params: dict[str, str] = field(repr=False)
    #: what this row sends: the run's action, or the one its plan chose
    action: Action
    #: an earlier changing call may have reached the service
    reached: bool
    attempts: int
    #: the aliyun CLI profile that sends it (None: the run's credentials)
    profile: str | None = None
    #: the last run could not learn the row's outcome: read it back before anything else
    unknown: bool = False
    #: run --plan: the plan's verdict (kind, differing fields, fingerprint of the state it read)
    plan: tuple[str, str, str | None] | None = None


class RowSource:
    """The input of one run (``RunOptions``): what it ingests, and each row to send, read again."""

    __slots__ = ("_options", "_written_since")

    def __init__(self, options: RunOptions, *, written_since: Callable[[str, int], bool] | None = None) -> None:
        """``written_since``: the run's backup's (``Backup.written_since``), if it keeps one."""
        self._options = options
        self._written_since = written_since

    def read(self) -> Iterator[Row | BadRow]:
        """Every row of the input that takes part in the run (``only_lines``), valid or not, in line order."""
        o = self._options
        only = o.only_lines
        for item in read_rows(o.input_path, o.row_action, overrides=o.overrides, profiles=o.profiles):
            if only is None or item.line in only:
                yield item

    def ingest(self, ckpt: Checkpoint) -> None:
        """Record every row of the input in ``ckpt``: valid ones pending, bad ones invalid."""
        ckpt.add_rows(self.read())

    def to_send(
        self, ckpt: Checkpoint, *, profile: object = ANY_PROFILE, chosen: Mapping[int, object] | None = None
    ) -> Iterator[list[WorkRow]]:
        """The rows still to send (of ``profile``; only the ``chosen`` lines if given), in short batches,
        with their values read again from the input: rows of ``unknown`` outcome first, then the rest in
        line order.

        A row the input no longer yields is recorded as it stands (``_unreadable``) and not sent.
        """
        # The first pass's rows are claimed ('sending') while the second reads: they must not be sent twice.
        taken: set[int] = set()
        for batch in self._to_send(ckpt, profile=profile, chosen=chosen, states=(RowState.UNKNOWN,)):
            taken.update(row.line for row in batch)
            yield batch
        yield from self._to_send(ckpt, profile=profile, chosen=chosen, states=(RowState.PENDING, RowState.SENDING),
                                 taken=taken)

    def _to_send(
        self, ckpt: Checkpoint, *, profile: object, chosen: Mapping[int, object] | None, states: tuple[str, ...],
        taken: set[int] | frozenset[int] = frozenset(),
    ) -> Iterator[list[WorkRow]]:
        o = self._options
        stream: Iterator[Row | BadRow] | None = None
        item: Row | BadRow | None = None
        after = 0
        last = max(chosen, default=0) if chosen is not None else None
        while todo := ckpt.todo(after=after, profile=profile, states=states):
            after = todo[-1].line
            if chosen is not None:
                todo = [t for t in todo if t.line in chosen]
            if taken:
                todo = [t for t in todo if t.line not in taken]
            at = [(t.line, t.offset) for t in todo if t.offset is not None]
            found: dict[int, Row | BadRow] = {}
            if len(at) == len(todo):
                found = {r.line: r for r in read_rows_at(o.input_path, o.row_action, at, overrides=o.overrides,
                                                         profiles=o.profiles)}
            else:
                if stream is None:
                    stream = iter(read_rows(o.input_path, o.row_action, overrides=o.overrides, profiles=o.profiles))
                    item = next(stream, None)
                for t in todo:
                    while item is not None and item.line < t.line:
                        item = next(stream, None)
                    if item is not None and item.line == t.line:
                        found[t.line] = item
            batch = []
            for t in todo:
                row = found.get(t.line)
                if isinstance(row, Row):
                    batch.append(self._work_row(t, row))
                else:
                    ckpt.record(_unreadable(t, row))
            yield batch
            if last is not None and after >= last:
                return

    def _work_row(self, todo: TodoRow, row: Row) -> WorkRow:
        action = recorded_action(todo.plan_send) if todo.plan_send else self._options.action
        # 'sending' at the start of a run: the last run left the row claimed, and may have sent its write,
        # unless it kept a backup that holds no record of the domain since the claim (one precedes each write).
        reached = todo.reached or (todo.state is RowState.SENDING and (
            todo.claim_mark is None or self._written_since is None or self._written_since(row.domain, todo.claim_mark)))
        return WorkRow(todo.line, row.domain, row.params, action, reached, todo.attempts, row.profile,
                       unknown=todo.state is RowState.UNKNOWN, plan=todo.plan)


def _unreadable(todo: TodoRow, item: Row | BadRow | None) -> RowOutcome:
    """A row the checkpoint holds but the input no longer yields (validation rules changed)."""
    why = item.reason if isinstance(item, BadRow) else "line not found"
    if todo.reached or todo.state in (RowState.SENDING, RowState.UNKNOWN):
        return RowOutcome(RowState.UNKNOWN, code="InputChanged",
                          message=f"the input row can no longer be read ({why}); outcome unknown",
                          line=todo.line, attempts=todo.attempts, reached=True)
    return RowOutcome(RowState.INVALID, code="InvalidRow", message=why, line=todo.line, attempts=todo.attempts)
