"""Every file name a run derives from another, in one place.

    >>> from bulk.actions import resolve
    >>> checkpoint = default_checkpoint(Path("domains.csv"), resolve("AddLiveSnapshotNotifyConfig"),
    ...                                 state=Path("/var/lib/bulk"))
    >>> str(checkpoint)
    '/var/lib/bulk/domains.csv.add-live-snapshot-notify-config/domains.csv.add-live-snapshot-notify-config.ckpt'
    >>> backup_path(checkpoint).name
    'domains.csv.add-live-snapshot-notify-config.backup.jsonl'

A run leaves a family of files: the checkpoint (with SQLite's WAL,
shared-memory and our lock file), the backup, the failures file, a verify's
and a rollback's own checkpoints, a plan and the checkpoint of the reads that
made it. Each name is derived here and nowhere else, so that the command
that writes a file and the one that finds it again agree.

They live in a state directory (``state_dir``: ``--state-dir``, else
``$BULK_STATE_DIR``, else the platform's user state directory,
``~/.local/state/bulk`` on Linux), one subdirectory per run named after its
input and action, never beside the input: the input of a rotation is its
keys file, and a receiver reads every keys file in that directory. A
checkpoint named with ``--checkpoint`` keeps its side files beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .actions import Action
from .inputs import Format

__all__ = [
    "STATE_ENV",
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
    "run_checkpoint",
    "run_dir",
    "state_dir",
    "verify_checkpoint",
]

#: the environment variable that names the state directory (``--state-dir`` wins over it)
STATE_ENV = "BULK_STATE_DIR"

_FAILURES_SUFFIX = {Format.CSV: ".csv", Format.JSONL: ".jsonl", Format.LIST: ".txt"}


def state_dir(given: Path | None = None) -> Path:
    """Where runs keep their state: ``given`` (``--state-dir``), else ``$BULK_STATE_DIR``, else the
    platform's user state directory (``~/.local/state/bulk`` on Linux)."""
    if given is not None:
        return given.expanduser()
    if named := os.environ.get(STATE_ENV):
        return Path(named).expanduser()
    return platformdirs.user_state_path("bulk")


def run_dir(name: str, *, state: Path | None = None) -> Path:
    """The directory of one run's state: ``name`` (its input and action) in the state directory."""
    return state_dir(state) / name


def default_checkpoint(input_path: Path, action: Action, *, state: Path | None = None) -> Path:
    """``domains.csv`` + Add... -> ``STATE/domains.csv.add-live-snapshot-notify-config/`` + that name ``.ckpt``
    (a rotation's input: its keys file)."""
    name = f"{input_path.name}.{action.kebab}"
    return run_dir(name, state=state) / f"{name}.ckpt"


def run_checkpoint(path: Path) -> Path:
    """A run's directory (``STATE/domains.csv.add-live-snapshot-notify-config``) -> the checkpoint of the run
    it is named after; any other path is a checkpoint already."""
    return path / f"{path.name}.ckpt" if path.is_dir() else path


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


def export_checkpoint(input_path: Path, *, state: Path | None = None) -> Path:
    """``domains.csv`` -> ``STATE/domains.csv.export/domains.csv.export.ckpt``: the reads of ``bulk export``,
    made anew each time."""
    name = f"{input_path.name}.export"
    return run_dir(name, state=state) / f"{name}.ckpt"


def plan_path(input_path: Path, action: Action, *, state: Path | None = None) -> Path:
    """``domains.csv`` + Add... -> ``domains.csv.add-live-snapshot-notify-config.plan.jsonl``,
    in that run's directory.
    """
    return default_checkpoint(input_path, action, state=state).with_suffix(".plan.jsonl")


def plan_reads_checkpoint(plan: Path, *, state: Path | None = None) -> Path:
    """``p.plan.jsonl`` -> ``STATE/p.plan.jsonl/p.plan.jsonl.reads.ckpt``:
    the reads that make the plan (``bulk plan``).
    """
    return run_dir(plan.name, state=state) / f"{plan.name}.reads.ckpt"


def plan_run_checkpoint(plan: Path, *, state: Path | None = None) -> Path:
    """``p.plan.jsonl`` -> ``STATE/p.plan.jsonl/p.plan.jsonl.ckpt``:
    the run that applies the plan (``bulk run --plan``).
    """
    return run_dir(plan.name, state=state) / f"{plan.name}.ckpt"
