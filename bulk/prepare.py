"""Before any call: the run recorded in its checkpoint (or checked against the one recorded), its input ingested.

    with Checkpoint.open(options.checkpoint_path) as ckpt:
        counts = prepare_run(ckpt, options)   # rows by state; nothing sent yet
    estimate = dry_run(options)               # what a run would do, from the input or the checkpoint

A checkpoint belongs to one run: its action, mode, input (by SHA-256) and
--set values (secret ones as fingerprints), and its endpoint, region and
account (``bulk.identity``). Running the same command again
resumes it; anything else is refused with what to do, since joining a
different file by line would send the wrong rows. ``prepare`` records the
run and ingests the input once (``rows.RowSource``), applies a plan
(``bulk run --plan``: rows the plan sends nothing for are settled at once),
and reopens the rows the last run left failed for a reason that may be
gone: a transient error, a safety stop's code, or every one with
``--retry-failed``. A run that fails before sending (a bad input, --strict)
leaves no checkpoint behind that would refuse the corrected file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backup import IDENTITY_KEY as BACKUP_IDENTITY
from .backup import META_KEY as BACKUP_META
from .backup import new_identity
from .checkpoint import PLAN_CONFLICT, Checkpoint, CheckpointError, RowOutcome, RowState, remove_checkpoint
from .files import LocalFault
from .inputs import (
    InputError,
    ValidationSummary,
    detect_format,
    file_sha256,
    validate_file,
)
from .options import RunOptions
from .pacing import Pacer
from .paths import backup_path
from .plan import PlanError, read_plan
from .redact import redact_overrides
from .rollback import ROLLED_BACK
from .rows import RowSource
from .safety import META_KEY as SAFETY_META
from .safety import tripped

__all__ = ["DryRun", "StrictModeError", "dry_run", "prepare", "prepare_run"]


class StrictModeError(CheckpointError):
    """--strict and at least one invalid row: nothing was sent."""


def prepare_run(ckpt: Checkpoint, options: RunOptions) -> tuple[dict[str, int], str | None]:
    """``prepare``, then --strict; the rows by state, and why the checkpoint was started anew (if it was).

    A new checkpoint is removed if either refuses the run.
    """
    new = ckpt.meta() is None
    try:
        restarted = prepare(ckpt, options)
        new = new or restarted is not None
        counts = ckpt.counts()
        if options.strict and counts["invalid"]:
            bad = ckpt.rows(states=[RowState.INVALID])
            lines = "; ".join(f"line {r['line']}: {r['message']}" for r, _ in zip(bad, range(10), strict=False))
            raise StrictModeError(f"--strict: {counts['invalid']} invalid row(s), nothing sent ({lines})")
    except (InputError, StrictModeError, PlanError, LocalFault):
        if new:
            # Nothing was sent: leave no checkpoint that would refuse the corrected file.
            ckpt.close()
            remove_checkpoint(options.checkpoint_path)
        raise
    return counts, restarted


def prepare(ckpt: Checkpoint, options: RunOptions) -> str | None:
    """Record the run (or check it matches the one recorded) and ingest the input.

    A checkpoint of another run (other values, another input) that never sent a call is started anew: its
    record holds nothing a resume needs. Returns why it was, or None.
    """
    action, path = options.action, options.input_path
    if not path.is_file():
        raise CheckpointError(f"input file {path} does not exist")
    wanted: dict[str, Any] = {
        "action": action.name,
        "mode": options.mode.value,
        "input_sha256": file_sha256(path),
        "overrides": redact_overrides(action, options.overrides),
        **options.extra_meta,
    }
    meta = ckpt.meta()
    if meta is not None and (undone := meta.get(ROLLED_BACK)):
        raise CheckpointError(f"the run of checkpoint {ckpt.path} was rolled back ({undone['by']}): it is not "
                              "resumed; to apply its input again, start on a new --checkpoint")
    restarted: str | None = None
    try:
        if meta is not None:
            _check_same_run(meta, wanted, ckpt.path)
        # Where and as whom: recorded by a new run (or one started before runs recorded it), else checked.
        identity = options.identity.check(meta or {}, ckpt.path) if options.identity is not None else {}
    except CheckpointError as refused:
        if ckpt.claimed():
            raise
        restarted = f"{refused.args[0].split('; ')[0]}, but never sent a call: started anew"
        ckpt.reset()
        backup_path(ckpt.path).unlink(missing_ok=True)  # made for the run that never sent: it holds nothing
        meta = None
        identity = options.identity.check({}, ckpt.path) if options.identity is not None else {}
    fresh = meta is None
    if meta is None:
        ckpt.set_meta({**wanted, **identity, "input_path": str(path.resolve()), "format": detect_format(path).value,
                       "created": time.time(), "ingested": False})
    elif identity:
        ckpt.set_meta(identity)
    if not (meta or {}).get("ingested"):
        RowSource(options).ingest(ckpt)
        if options.plan_path is not None:
            _apply_plan(ckpt, options.plan_path)
        ckpt.set_meta({"ingested": True})
    if options.changes:
        # Complete only while every run kept a backup: then a domain without a record was never written.
        kept: dict[str, Any] = {BACKUP_META: options.backup and (fresh or bool(meta and meta.get(BACKUP_META)))}
        if options.backup and not (meta or {}).get(BACKUP_IDENTITY):
            kept[BACKUP_IDENTITY] = new_identity()  # before the file is made: one it does not name is never trusted
        ckpt.set_meta(kept)
    if options.force:
        ckpt.reopen_conflicts()
    if options.retry_failed:
        ckpt.reopen_failed(all_failed=True)
    elif not fresh:
        ckpt.reopen_failed(all_failed=False)
        for code in tripped(meta):
            # The last run's safety stops: their cause has been fixed (or a stop trips again at once).
            ckpt.reopen_failed(code=code)
    if tripped(meta):
        ckpt.set_meta({SAFETY_META: None})
    return restarted


def _check_same_run(meta: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    if meta.get("action") != wanted["action"]:
        raise CheckpointError(f"checkpoint {path} belongs to a {meta.get('action')} run, not {wanted['action']}")
    if meta.get("input_sha256") != wanted["input_sha256"]:
        raise CheckpointError(
            f"the input changed since checkpoint {path} was started (SHA-256 differs); "
            "restore the original file or start over with a new --checkpoint"
        )
    for key, value in wanted.items():
        if key not in ("action", "input_sha256") and meta.get(key, value if key == "mode" else None) != value:
            raise CheckpointError(
                f"checkpoint {path} was started with {_shown(key, meta.get(key))}, this run has {_shown(key, value)}; "
                "run the same command again to resume, or use a new --checkpoint"
            )


def _shown(key: str, value: Any) -> str:
    """A recorded value as the command line gives it, not as Python writes it."""
    if key == "overrides":
        pairs = ", ".join(f"--set {k}={v}" for k, v in sorted((value or {}).items()))
        return pairs or "no --set values"
    return f"{key} {value}" if value is not None else f"no {key}"


def _apply_plan(ckpt: Checkpoint, plan_path: Path) -> None:
    """Store the plan's verdict per row; rows it has no verdict on are settled at once.

    Noop rows stay to be read: the run skips them only if their state is still the one the plan read.
    """
    _, entries = read_plan(plan_path)
    lines = [r["line"] for r in ckpt.rows(states=[RowState.PENDING])]
    ckpt.set_plan((line, e.kind, ",".join(e.fields), e.send, e.seen) for line in lines if (e := entries.get(line)))
    for line in lines:
        entry = entries.get(line)
        if entry is None:
            ckpt.record(RowOutcome(RowState.SKIPPED, message="not in the plan", line=line))
        elif entry.kind == "conflict":
            ckpt.record(RowOutcome(RowState.FAILED, code=PLAN_CONFLICT,
                                   message=entry.reason or "conflict in the plan", line=line))
        elif not entry.send and entry.kind != "noop":
            ckpt.record(RowOutcome(RowState.SKIPPED, message=f"{entry.kind} in the plan", line=line))
    ckpt.flush()


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a run would do: rows by state, the calls to send and how long they would take."""

    counts: dict[str, int]
    to_send: int
    seconds: float
    #: the input's validation, when the run has not started (else the counts are the checkpoint's)
    validation: ValidationSummary | None


def dry_run(options: RunOptions) -> DryRun:
    """Validate (or read the checkpoint of a started run) and estimate; send nothing."""
    path = options.checkpoint_path
    if path.exists():
        with Checkpoint.open_readonly(path) as ckpt:
            counts = ckpt.counts()
        to_send = counts["pending"] + counts["sending"] + counts["unknown"]
        return DryRun(counts, to_send, to_send / Pacer(options.qps).full_rate, None)
    summary = validate_file(options.input_path, options.row_action, overrides=options.overrides,
                            profiles=options.profiles)
    counts = {"pending": summary.valid, "invalid": summary.bad_count}
    return DryRun(counts, summary.valid, summary.valid / Pacer(options.qps).full_rate, summary)
