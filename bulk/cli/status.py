"""``bulk status``: where a run stands, also while it runs, for a person or (``--json``) a program.

    bulk status domains.csv.add-live-snapshot-notify-config.ckpt
    bulk status ~/.local/state/bulk/domains.csv.add-live-snapshot-notify-config --json | jq .running

Counts by outcome, when the run started, whether a process holds it now (and which), how its last run
ended (exit code, and why it or one of its accounts stopped) and its backup. The ``--json`` shape is
documented in docs/json.md and kept stable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..backup import IDENTITY_KEY as BACKUP_IDENTITY
from ..backup import BackupState, backup_state
from ..checkpoint import LAST_RUN, Checkpoint
from ..paths import backup_path
from ..report import accounts_table
from ..rollback import ROLLED_BACK
from . import examples
from .commands import JsonOpt, RunCheckpointArg
from .common import app, errors, out, print_json

__all__ = ["status_cmd"]

_STATES = ("done", "skipped", "failed", "invalid", "unknown", "pending", "sending")
#: a rollback's rows left alone: shown for the run, not per account
_RUN_STATES = (*_STATES, "conflict")


@app.command("status", epilog=examples.STATUS)
def status_cmd(checkpoint: RunCheckpointArg, json: JsonOpt = False) -> None:
    """Where a run stands, also while it runs: counts, when it started, who holds it, how it last ended."""
    with errors(), Checkpoint.open_readonly(checkpoint) as ckpt:
        meta, counts, codes = ckpt.meta() or {}, ckpt.counts(), ckpt.error_counts()
        by_profile, claimed = ckpt.counts_by_profile(), ckpt.claimed()
    kept = backup_state(backup_path(checkpoint), meta.get(BACKUP_IDENTITY), claimed=claimed)
    last: dict[str, Any] | None = meta.get(LAST_RUN)
    stopped = (last or {}).get("stopped") or {}
    status: dict[str, Any] = {
        "action": meta.get("action"), "input": meta.get("input_path"), "started": _when(meta.get("created")),
        "running": Checkpoint.in_use(checkpoint), "pid": Checkpoint.holder(checkpoint),
        "last_run": last and {**last, "started": _when(last.get("started")), "ended": _when(last.get("ended"))},
        "total": sum(counts.values()), **{k: counts[k] for k in _RUN_STATES}, "errors": codes,
        "backup": {"path": str(kept.path), "state": kept.state, "records": kept.records},
        "rolled_back": meta.get(ROLLED_BACK),
    }
    if by_profile:
        # A run across accounts: the same counts per profile ("" for rows that name none).
        status["accounts"] = {profile or "": {"total": sum(c.values()), **{k: c[k] for k in _STATES}}
                              for profile, c in by_profile.items()}
    if json:
        print_json(status)
        return
    out.print(f"{status['action']} on {status['input']}", soft_wrap=True)
    out.print(f"  started  {status['started'] or 'unknown'}")
    running = f"yes, by process {status['pid']}" if status["pid"] else "yes"
    out.print(f"  running  {running if status['running'] else 'no'}")
    if last:
        ended = f"exit {last['exit_code']} at {status['last_run']['ended']}"
        if halt := last.get("halt"):
            ended += f": {halt['kind']}: {halt['message']}"
        out.print(f"  last run {ended}", soft_wrap=True)
    for key in ("total", *_RUN_STATES):
        out.print(f"  {key:8} {status[key]}")
    for code, n in codes.items():
        out.print(f"  error {code}: {n}")
    for profile, halt in stopped.items():
        if halt:
            who = profile or "(the run's credentials)"
            out.print(f"  account {who} stopped: {halt['kind']}: {halt['message']}", soft_wrap=True)
    out.print(f"  backup   {_backup_line(kept)}", soft_wrap=True)
    if undone := meta.get(ROLLED_BACK):
        out.print(f"  rolled back by {undone['by']}", soft_wrap=True)
    if by_profile:
        out.print(accounts_table(by_profile))


def _when(seconds: float | None) -> str | None:
    """A time recorded as seconds since the epoch, as ISO 8601 in UTC; None if not recorded."""
    if not isinstance(seconds, int | float):
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _backup_line(kept: BackupState) -> str:
    """Whether the run still has its backup, for ``bulk status``."""
    if kept.state == "none":
        return "none (no run of it kept a backup, or none has recorded anything yet)"
    if kept.state == "kept":
        return f"{kept.path}: {kept.records} domain(s); keep it while the run may have to be rolled back"
    return f"{kept.state}: {kept.problem}"
