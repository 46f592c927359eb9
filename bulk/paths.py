"""Every file name a run derives from another, in one place.

    >>> from bulk.actions import resolve
    >>> checkpoint = default_checkpoint(Path("domains.csv"), resolve("AddLiveSnapshotNotifyConfig"))
    >>> checkpoint.name
    'domains.csv.add-live-snapshot-notify-config.ckpt'
    >>> backup_path(checkpoint).name
    'domains.csv.add-live-snapshot-notify-config.backup.jsonl'

A run leaves a family of files beside its input: the checkpoint (with
SQLite's WAL, shared-memory and our lock file), the backup, the failures
file, a verify's and a rollback's own checkpoints (and the frozen copy of
the backup a rollback reads), a plan and the checkpoint
of the reads that made it. Each name is derived here and nowhere else, so
that the command that writes a file and the one that finds it again agree.
"""

from __future__ import annotations

from pathlib import Path

from .actions import Action
from .inputs import Format

__all__ = [
    "backup_path",
    "checkpoint_files",
    "default_checkpoint",
    "failures_path",
    "lock_path",
    "plan_path",
    "plan_reads_checkpoint",
    "plan_run_checkpoint",
    "rollback_checkpoint",
    "rollback_input",
    "verify_checkpoint",
]

_FAILURES_SUFFIX = {Format.CSV: ".csv", Format.JSONL: ".jsonl", Format.LIST: ".txt"}


def default_checkpoint(input_path: Path, action: Action) -> Path:
    """``domains.csv`` + Add... -> ``domains.csv.add-live-snapshot-notify-config.ckpt`` (a rotation: its keys file)."""
    return input_path.with_name(f"{input_path.name}.{action.kebab}.ckpt")


def lock_path(checkpoint: Path) -> Path:
    """``x.ckpt`` -> ``x.ckpt.lock``: held with ``flock`` by the run that writes the checkpoint."""
    return Path(f"{checkpoint}.lock")


def checkpoint_files(checkpoint: Path) -> tuple[Path, ...]:
    """The checkpoint and its WAL, shared-memory and lock files."""
    return (checkpoint, Path(f"{checkpoint}-wal"), Path(f"{checkpoint}-shm"), lock_path(checkpoint))


def backup_path(checkpoint: Path) -> Path:
    """``domains.ckpt`` -> ``domains.backup.jsonl``."""
    return checkpoint.with_name(checkpoint.stem + ".backup.jsonl")


def failures_path(checkpoint: Path, fmt: Format) -> Path:
    """``x.ckpt`` -> ``x.failures.csv`` (or .jsonl / .txt, as the input was)."""
    return checkpoint.with_name(checkpoint.stem + ".failures" + _FAILURES_SUFFIX[fmt])


def verify_checkpoint(checkpoint: Path) -> Path:
    """``x.ckpt`` -> ``x.ckpt.verify``: a verify's own checkpoint, made anew each time."""
    return checkpoint.with_name(checkpoint.name + ".verify")


def rollback_checkpoint(checkpoint: Path) -> Path:
    """``x.ckpt`` -> ``x.rollback.ckpt``."""
    return checkpoint.with_name(checkpoint.stem + ".rollback.ckpt")


def rollback_input(checkpoint: Path) -> Path:
    """``x.ckpt`` -> ``x.rollback.input.jsonl``: the frozen copy of the backup that a rollback reads (mode 0600)."""
    return checkpoint.with_name(checkpoint.stem + ".rollback.input.jsonl")


def plan_path(input_path: Path, action: Action) -> Path:
    """``domains.csv`` + Add... -> ``domains.csv.add-live-snapshot-notify-config.plan.jsonl``."""
    return input_path.with_name(f"{input_path.name}.{action.kebab}.plan.jsonl")


def plan_reads_checkpoint(plan: Path) -> Path:
    """``p.plan.jsonl`` -> ``p.plan.jsonl.reads.ckpt``: the reads that make the plan (``bulk plan``)."""
    return plan.with_name(plan.name + ".reads.ckpt")


def plan_run_checkpoint(plan: Path) -> Path:
    """``p.plan.jsonl`` -> ``p.plan.jsonl.ckpt``: the run that applies the plan (``bulk run --plan``)."""
    return plan.with_name(plan.name + ".ckpt")
