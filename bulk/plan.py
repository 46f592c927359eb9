"""Plans: what a change would do to each domain, decided from its live state.

    kind, fields, send = classify(resolve("AddLiveSnapshotNotifyConfig"), row.params, current)
    # ("update", ("NotifyUrl",), "UpdateLiveSnapshotNotifyConfig")

``bulk plan`` reads every domain's current config (an engine run in plan
mode), classifies each row as ``create``, ``update``, ``noop`` or
``conflict`` and writes a plan file: one JSON header line (action, input
digest, time) and one line per row, with a fingerprint of the state it read
(``state_seen``). ``bulk run --plan`` reads each create, update and noop row
again before anything is sent: a row whose live state is no longer the one
the plan read is not written (``PlanConflict: changed since plan``), a noop
row that still is is skipped, and the others are sent with the action the
plan chose. Each create and update row also says what changes, field by
field, old value -> new value (``changes``), as terraform's plan does; a
key (a secret) is shown as its fingerprint, never as itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .actions import SECRET_PARAMS, Action
from .credentials import fingerprint
from .errors import BulkError, UsageError
from .files import atomic_file
from .redact import error_kind

__all__ = ["KINDS", "PlanEntry", "PlanError", "PlanHeader", "changes", "check_plan", "classify", "plan_overrides",
           "read_plan", "shown",
           "state_seen", "write_plan"]

KINDS = ("create", "update", "noop", "conflict", "invalid")


class PlanError(BulkError):
    """The plan file cannot be applied (too old, another input, other values, unreadable)."""


@dataclass(frozen=True, slots=True)
class PlanHeader:
    """A plan file's first line: the action, the input and its digest, when, the --set values, where."""

    action: str
    input_path: str
    input_sha256: str
    created: float
    #: the plan's --set values, secrets as fingerprints: a run must give the same ones
    overrides: dict[str, str] = field(default_factory=dict)
    #: where the states were read: ``run --plan`` sends there unless told otherwise (None: not recorded)
    endpoint: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class PlanEntry:
    """One row of a plan: its kind, the fields that differ, the action to send, and the state it read."""

    line: int
    domain: str
    kind: str
    fields: tuple[str, ...] = ()
    send: str | None = None
    reason: str = ""
    #: ``state_seen`` of the live state the plan read (None: a plan written before it was recorded)
    seen: str | None = None
    #: what changes, field by field: ``NotifyUrl "old" -> "new"`` (``changes``; keys as fingerprints)
    changes: str = ""


def state_seen(current: Mapping[str, str]) -> str:
    """A fingerprint of a live state, to tell later whether it changed: never the state (it holds keys)."""
    return fingerprint(orjson.dumps(dict(sorted(current.items()))).decode())


def shown(name: str, value: str) -> str:
    """A field's value as bulk may show it: a key as its fingerprint, an empty value as ``(none)``."""
    if not value:
        return "(none)"
    return fingerprint(value) if name in SECRET_PARAMS else orjson.dumps(value).decode()


def changes(action: Action, params: Mapping[str, str], current: Mapping[str, str]) -> str:
    """Each field where ``current`` differs from what ``params`` set: ``Name old -> new``, joined by ``; ``.

    Compared as ``Action.differences`` compares; a key is shown as its
    fingerprint, so the text may be logged, stored and printed.
    """
    if action.expect is None:
        raise ValueError(f"{action.name} has no read-back")
    return "; ".join(f"{name} {shown(name, current.get(name, ''))} -> {shown(name, want)}"
                     for name, want in action.expect(params).items() if current.get(name, "") != want)


def classify(
    action: Action, params: Mapping[str, str], current: Mapping[str, str]
) -> tuple[str, tuple[str, ...], str | None]:
    """(kind, differing fields, action to send) for a row and the live state it would change."""
    if action.reader is None or action.update is None:
        raise UsageError(f"{action.name} changes nothing: there is nothing to plan")
    diffs = tuple(action.differences(params, current))
    if not action.reader.exists(current):
        # Nothing to delete is already the goal; anything else is created.
        return ("noop", (), None) if action.create is None else ("create", diffs, action.create.name)
    if not diffs:
        return "noop", (), None
    return "update", diffs, action.update.name


def write_plan(path: Path, header: PlanHeader, entries: list[PlanEntry]) -> None:
    """Write the header line and one JSON line per entry, atomically (mode 0600)."""
    with atomic_file(path) as out:
        out.write(orjson.dumps({"plan": 1, **_asdict(header)}) + b"\n")
        for entry in entries:
            out.write(orjson.dumps(_asdict(entry)) + b"\n")


def read_plan(path: Path) -> tuple[PlanHeader, dict[int, PlanEntry]]:
    """Read a plan file (PlanError if it is not one)."""
    try:
        lines = path.read_bytes().splitlines()
        head = orjson.loads(lines[0])
        if head.get("plan") != 1:
            raise ValueError("not a bulk plan")
        header = PlanHeader(head["action"], head["input_path"], head["input_sha256"], float(head["created"]),
                            dict(head.get("overrides") or {}), head.get("endpoint"), head.get("region"))
        entries = {}
        for raw in lines[1:]:
            item = orjson.loads(raw)
            entries[item["line"]] = PlanEntry(
                item["line"], item["domain"], item["kind"], tuple(item["fields"]), item["send"], item["reason"],
                item.get("seen"), item.get("changes", ""),
            )
    except (OSError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise PlanError(f"cannot read plan {path}: {error_kind(exc)}") from None
    return header, entries


def plan_overrides(
    path: Path, action: Action, header: PlanHeader, given: Mapping[str, str]
) -> dict[str, str]:
    """The --set values a run of plan ``path`` sends: the plan's own, with ``given`` ones on top.

    A secret the plan holds only as a fingerprint must be given again (``@FILE`` or ``@env:VARIABLE``);
    ``check_plan`` then checks it against that fingerprint.
    """
    overrides = dict(given)
    for name, stored in header.overrides.items():
        if name in overrides:
            continue
        if name in action.secret_names:
            raise PlanError(f"plan {path} was made with --set {name} (a secret, kept only as {stored}); give it "
                            f"again, with --set {name} read from a file (@FILE) or the environment (@env:VARIABLE)")
        overrides[name] = stored
    return overrides


def check_plan(
    path: Path, header: PlanHeader, *, overrides: Mapping[str, str], max_age: float | None, now: float | None = None
) -> None:
    """Refuse a plan made with other --set values, or (for a fresh start) one older than ``max_age`` seconds."""
    for name in sorted(overrides.keys() & header.overrides.keys()):
        given, made = overrides[name], header.overrides[name]
        if given != made and made.startswith("fp:"):
            raise PlanError(f"--set {name} is not the value plan {path} was made with (fingerprint {given}, the "
                            f"plan's {made}); give the same secret, or make a new plan")
    if dict(overrides) != header.overrides:
        given = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "none"
        made = ", ".join(f"{k}={v}" for k, v in sorted(header.overrides.items())) or "none"
        raise PlanError(f"plan {path} was made with --set {made}, this run has {given}; "
                        "give the same values, or make a new plan")
    if max_age is None:
        return
    age = (now if now is not None else time.time()) - header.created
    if age > max_age:
        raise PlanError(
            f"plan {path} is {age / 60:.0f} min old (limit {max_age / 60:.0f} min); make a new one with bulk plan"
        )


def _asdict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}
