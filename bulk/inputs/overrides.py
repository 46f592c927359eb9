"""``--set Name=Value`` pairs, checked against the action, with values read from files or the environment.

    overrides = parse_overrides(["NotifyUrl=https://cb.example.com/snap", "NotifyAuthKey=@/run/secrets/key"], action)
    for name in literal_secrets(pairs, action):
        warn(f"--set {name} is given literally: it shows in ps and the shell history")

A secret given as ``@PATH`` or ``@env:VARIABLE`` never reaches ``ps`` or a
shell history; one given literally still works, and the CLI warns. No
message shows a secret value, nor a file's content.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

from ..actions import SECRET_PARAMS, Action, Param
from ..credentials import fingerprint
from .model import KEY_SHAPED, InputError, shown

__all__ = ["literal_secrets", "parse_overrides"]

# A --set value read from a file is one value: a key or a URL, not a document.
_MAX_VALUE_FILE = 8192
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_PATH = re.compile(r"[^\x00-\x1f\x7f]{1,4096}")


def parse_overrides(
    pairs: Sequence[str], action: Action, *, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """``["Name=Value", ...]`` checked against the action; InputError on any mistake.

    A value ``@PATH`` is read from that file and ``@env:VARIABLE`` from
    ``environ``: no parameter of these actions can start with ``@``, so
    neither form is ambiguous. Whitespace around any value is dropped, a
    file's trailing line break too (as curl and httpie drop it). No message
    shows a secret value, nor a file's content.
    """
    known = {p.name: p for p in action.params if p.name != "DomainName"}
    out: dict[str, str] = {}
    for number, pair in enumerate(pairs, 1):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            # Not echoed: a mistyped pair may be a bare secret.
            raise InputError(f"--set number {number} is not Name=Value (e.g. --set NotifyUrl=https://cb.example.com/snap)")
        if name == "DomainName":
            raise InputError("DomainName cannot be given with --set: it comes from the input, one per row")
        if name == "RegionId":
            raise InputError("--set RegionId: no such parameter for --set; give --region for the run, "
                             "or a RegionId column for each row")
        if name == "Profile":
            raise InputError("--set Profile: no such parameter for --set; give --profile for the run, "
                             "or a Profile column for each row")
        param = known.get(name)
        if param is None:
            raise InputError(f"--set {shown(name, f'number {number}')}: {action.name} has no such parameter; "
                             f"it takes {', '.join(known)}")
        if name in out:
            raise InputError(f"--set {name} is given twice")
        value = _value_of(name, value.strip(), environ).strip()
        problem = param.check(value)
        if problem:
            raise InputError(f"--set {name}={_shown_value(param, value)}: {name} {problem}")
        out[name] = value
    return out


def literal_secrets(pairs: Sequence[str], action: Action) -> list[str]:
    """Secret parameters among ``pairs`` given as a literal value (visible in ``ps`` and shell history)."""
    names: list[str] = []
    secret = action.secret_names | SECRET_PARAMS
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if sep and name in secret and value and not value.startswith("@") and name not in names:
            names.append(name)
    return names


def _value_of(name: str, value: str, environ: Mapping[str, str]) -> str:
    """A --set value, read from a file or the environment when it says so."""
    if not value.startswith("@"):
        return value
    if value.startswith("@env:"):
        variable = value[5:]
        label = shown(variable, "(name not shown)", shape=_VARIABLE)
        if not variable:
            raise InputError(f"--set {name}=@env: names no environment variable (e.g. {name}=@env:BULK_{name.upper()})")
        if variable not in environ:
            raise InputError(f"--set {name}: environment variable {label} is not set")
        if not environ[variable].strip():
            raise InputError(f"--set {name}: environment variable {label} is empty")
        return environ[variable]
    path = value[1:]
    if not path:
        raise InputError(f"--set {name}=@ names no file (e.g. {name}=@/run/secrets/{name.lower()})")
    label = shown(path, "(path not shown)", shape=_PATH)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_VALUE_FILE + 1)
    except OSError as exc:
        raise InputError(f"--set {name}: cannot read file {label}: {exc.strerror}") from None
    if len(data) > _MAX_VALUE_FILE:
        raise InputError(f"--set {name}: file {label} is larger than {_MAX_VALUE_FILE} bytes; it should hold one value")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"--set {name}: file {label} is not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"--set {name}: file {label} is empty")
    return text


def _shown_value(param: Param, value: str) -> str:
    if param.secret or param.name in SECRET_PARAMS or KEY_SHAPED.fullmatch(value):
        return fingerprint(value)
    return repr(value)
