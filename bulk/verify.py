"""Reading back a finished run: does the service hold what the checkpoint says was done?

    options = verify_options(Path("domains.csv.add-live-snapshot-notify-config.ckpt"), given=[])
    result = await engine.run(options, client=client)
    for row in drifted(options.checkpoint_path):
        print(row["line"], row["domain"], row["code"], row["message"])

A verify is an engine run in verify mode over the rows the run recorded
``done`` (and the rows a plan found ``noop``, which hold the config too),
with its own checkpoint (``paths.verify_checkpoint``, made anew each time).
The run's --set values come from its checkpoint; secret ones were never
stored, so they must be given again and are checked against the
fingerprints the run kept. An input that changed since the run is refused:
joining a different file by line would compare the wrong rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from .actions import Action, recorded_action
from .checkpoint import Checkpoint, RowState, StoredRow, remove_checkpoint
from .errors import BulkError
from .inputs import file_sha256, parse_overrides
from .options import Mode, RunOptions, Tuning
from .paths import verify_checkpoint
from .redact import redact_overrides

__all__ = ["VerifyError", "drifted", "recover_overrides", "verify_action", "verify_options"]


class VerifyError(BulkError):
    """The run cannot be verified as asked (the message says why and what to do)."""


def verify_action(checkpoint: Path) -> str:
    """The action of the run recorded in ``checkpoint``."""
    with Checkpoint.open_readonly(checkpoint) as c:
        action = (c.meta() or {}).get("action")
    if not action:
        raise VerifyError(f"{checkpoint} holds no run")
    return str(action)


def verify_options(
    checkpoint: Path, *, given: Sequence[str] = (), tuning: Tuning | None = None, profiles: frozenset[str] | None = None
) -> RunOptions:
    """The options of a verify run over ``checkpoint``'s done (and noop) rows; VerifyError or CheckpointError.

    ``given`` are ``--set`` pairs repeating the run's secret values; ``profiles``
    the aliyun CLI profile names its rows may name.
    """
    with Checkpoint.open_readonly(checkpoint) as c:
        meta = c.meta() or {}
        # Done rows, and the plan's noop rows, skipped because they held the row's config already.
        done = frozenset(r["line"] for r in c.rows(states=[RowState.DONE, RowState.SKIPPED])
                         if r["state"] == RowState.DONE or r["plan_kind"] == "noop")
    if "action" not in meta:
        raise VerifyError(f"{checkpoint} holds no run")
    action = recorded_action(meta["action"])
    source = Path(meta["input_path"])
    if not source.is_file() or file_sha256(source) != meta["input_sha256"]:
        raise VerifyError(f"the input {source} changed since the run of {checkpoint} (or is gone); "
                          "verify needs the very file the run used")
    overrides = recover_overrides(action, meta.get("overrides", {}), parse_overrides(given, action))
    target = verify_checkpoint(checkpoint)
    remove_checkpoint(target)
    return RunOptions(action=action, input_path=source, checkpoint_path=target, overrides=overrides,
                      mode=Mode.VERIFY, only_lines=done, keep_current=tuple(meta.get("keep_current", ())),
                      profiles=profiles, **(tuning or Tuning()).fields())


def recover_overrides(action: Action, stored: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """The run's --set values: stored ones as they are, secret ones given again and checked."""
    overrides = {k: v for k, v in stored.items() if k not in action.secret_names}
    for name in action.secret_names & stored.keys():
        if name not in given:
            raise VerifyError(f"the run set {name} with --set; give it again with --set {name}=@FILE "
                              "(secrets are not stored)")
        if redact_overrides(action, {name: given[name]})[name] != stored[name]:
            raise VerifyError(f"--set {name} differs from the value the run used ({stored[name]})")
        overrides[name] = given[name]
    return overrides


def drifted(verify_checkpoint: Path) -> Iterator[StoredRow]:
    """The rows a verify found drifted or unreadable."""
    with Checkpoint.open_readonly(verify_checkpoint) as c:
        yield from c.rows(states=[RowState.FAILED])
