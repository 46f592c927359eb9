"""The checkpoint: locking, batching, and what survives kill -9."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bulk.checkpoint import Checkpoint, CheckpointBusy, CheckpointError, RowOutcome, RowState
from bulk.inputs import BadRow, Row


def test_rows_move_through_states(tmp_path: Path) -> None:
    with Checkpoint.open(tmp_path / "c.ckpt") as ckpt:
        ckpt.set_meta({"action": "AddLiveSnapshotNotifyConfig", "overrides": {"NotifyUrl": "http://x.example.com"}})
        ckpt.add_rows([Row(2, "a.example.com", {}, {}, offset=10),
                       BadRow(3, "DomainName is required")])
        ckpt.claim([(2, False)])
        assert [(t.line, t.state, t.offset) for t in ckpt.todo()] == [(2, RowState.SENDING, 10)]
        ckpt.record(RowOutcome(RowState.DONE, action="AddLiveSnapshotNotifyConfig", request_id="R1",
                               line=2, attempts=2))
        ckpt.flush()
        assert ckpt.counts()["done"] == 1
        assert ckpt.error_counts() == {"InvalidRow": 1}
        done = next(ckpt.rows(states=[RowState.DONE]))
        assert done["request_id"] == "R1" and done["attempts"] == 2 and done["finished"]
        assert ckpt.meta()["overrides"] == {"NotifyUrl": "http://x.example.com"}
    assert oct((tmp_path / "c.ckpt").stat().st_mode & 0o777) == "0o600"


def test_reopen_failed_only_transient_unless_all(tmp_path: Path) -> None:
    with Checkpoint.open(tmp_path / "c.ckpt") as ckpt:
        ckpt.add_rows([Row(i, f"d{i}.example.com", {}, {}) for i in (2, 3, 4)])
        ckpt.record(RowOutcome(RowState.FAILED, code="InternalError", transient=True, line=2, attempts=8, reached=True))
        ckpt.record(RowOutcome(RowState.FAILED, code="MalformedParam", transient=False, line=3, attempts=1))
        ckpt.record(RowOutcome(RowState.FAILED, code="PlanConflict", transient=False, line=4, attempts=0))
        ckpt.flush()
        assert ckpt.reopen_failed(all_failed=False) == 1
        assert ckpt.counts()["failed"] == 2
        # A reopened row that may have landed keeps saying so: it is read back before anything is sent.
        assert [(t.line, t.reached) for t in ckpt.todo()] == [(2, True)]
        assert ckpt.reopen_failed(all_failed=True) == 1
        assert ckpt.counts()["pending"] == 2
        # A plan conflict is never turned into a call, not even by --retry-failed.
        assert ckpt.counts()["failed"] == 1


def test_reopen_failed_with_a_code_reopens_only_that_code(tmp_path: Path) -> None:
    """What the next run does after a safety stop: the rows of its code, permanent or not, and no others."""
    with Checkpoint.open(tmp_path / "c.ckpt") as ckpt:
        ckpt.add_rows([Row(i, f"d{i}.example.com", {}, {}) for i in (2, 3, 4, 5)])
        for line, code in ((2, "Forbidden.RAM"), (3, "MalformedParam"), (4, "Forbidden.RAM"), (5, "PlanConflict")):
            ckpt.record(RowOutcome(RowState.FAILED, code=code, line=line, attempts=1))
        ckpt.flush()
        assert ckpt.reopen_failed(code="Forbidden.RAM") == 2
        assert [t.line for t in ckpt.todo()] == [2, 4]
        assert ckpt.reopen_failed(code="PlanConflict") == 0


def test_in_use_is_true_only_while_a_run_holds_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    assert not Checkpoint.in_use(path)
    with Checkpoint.open(path):
        assert Checkpoint.in_use(path)
    assert not Checkpoint.in_use(path)


def test_second_writer_is_refused_while_first_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from bulk.checkpoint import Checkpoint
            c = Checkpoint.open(Path({str(path)!r}))
            print("held", flush=True)
            time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CheckpointBusy):
            Checkpoint.open(path)
        # Readers are welcome while a run writes.
        with Checkpoint.open_readonly(path) as reader:
            assert reader.counts()["pending"] == 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the dead holder's lock.
    Checkpoint.open(path).close()


def test_claims_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from bulk.checkpoint import Checkpoint, RowOutcome, RowState
        from bulk.inputs import Row
        c = Checkpoint.open(Path({str(path)!r}))
        c.add_rows([Row(i, f"d{{i}}.example.com", {{}}, {{}}) for i in range(2, 12)])
        c.claim([(2, False), (3, False), (4, False)])
        c.record(RowOutcome(RowState.DONE, request_id="R", line=2, attempts=1))
        c.flush()
        c.record(RowOutcome(RowState.DONE, request_id="R", line=3, attempts=1))  # buffered, never committed
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    with Checkpoint.open(path) as ckpt:
        states = {r["line"]: r["state"] for r in ckpt.rows()}
    assert states[2] == "done"
    # The lost result is still 'sending': it will be read back, not lost or re-applied blindly.
    assert states[3] == "sending" and states[4] == "sending"
    assert [states[i] for i in range(5, 12)] == ["pending"] * 7


def test_a_claim_keeps_what_the_run_knew_of_each_row_and_the_backups_mark(tmp_path: Path) -> None:
    """A row claimed as reached stays reached if the run dies: the next run must not take it for unsent
    because the backup shows no record since this later claim (the record came before an earlier one)."""
    with Checkpoint.open(tmp_path / "c.ckpt") as c:
        c.add_rows([Row(i, f"d{i}.example.com", {}, {}) for i in range(2, 5)])
        c.claim([(2, True), (3, False)], mark=7)
        c.claim([(4, False)])
        todo = {t.line: (t.state, t.reached, t.claim_mark) for t in c.todo()}
    assert todo == {2: (RowState.SENDING, True, 7), 3: (RowState.SENDING, False, 7), 4: (RowState.SENDING, False, None)}


def test_a_read_only_view_sees_one_snapshot_while_a_run_commits(tmp_path: Path) -> None:
    """``bulk status`` and ``bulk report`` read counts, then rows: a commit in between must not make them
    disagree (a report whose totals are not those of its rows)."""
    path = tmp_path / "c.ckpt"
    with Checkpoint.open(path) as run:
        run.add_rows([Row(i, f"d{i}.example.com", {}, {}) for i in range(2, 12)])
        with Checkpoint.open_readonly(path) as view:
            before = view.counts()
            run.claim([(line, False) for line in range(2, 7)])
            run.record(RowOutcome(RowState.DONE, request_id="R", line=2, attempts=1))
            run.flush()
            states = [r["state"] for r in view.rows()]
            assert before["pending"] == states.count("pending") == 10 and view.counts() == before
        with Checkpoint.open_readonly(path) as later:
            assert later.counts()["sending"] == 4 and later.counts()["done"] == 1


def test_not_a_checkpoint(tmp_path: Path) -> None:
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError):
        Checkpoint.open(junk)
    with pytest.raises(CheckpointError):
        Checkpoint.open_readonly(tmp_path / "missing.ckpt")


def test_an_outcome_attached_to_its_row_keeps_every_field() -> None:
    # Every field set to something other than its default: a field of_row forgot would show here.
    values: dict[str, object] = {}
    for f in dataclasses.fields(RowOutcome):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        values[f.name] = (RowState.FAILED if kind == "RowState" else 7 if "int" in kind
                          else True if "bool" in kind else f"{f.name}-value")
    outcome = RowOutcome(**values)  # type: ignore[arg-type]
    assert outcome.of_row(line=9, attempts=3, reached=False) == dataclasses.replace(
        outcome, line=9, attempts=3, reached=False)
