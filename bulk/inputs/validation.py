"""Each record checked against the action: a row ready to send, or a bad row that says why.

    for item in validated(lines, parser, tally, action, overrides, Row, dedupe=True, json=False):
        ...

Domain names are compared and sent in their DNS form (see
``actions.normalize_domain``); a ``RegionId`` cell is checked and sent per
row; a ``Profile`` cell names the aliyun CLI profile whose credentials send
the row (checked against the names given, and never sent). A reason never
holds a secret value, and a bad row's cells hold no key-shaped word: a row
shifted by one cell puts its key where no column is secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import orjson

from ..actions import Action, InvalidParams, check_region, normalize_domain
from .dedupe import FirstSeen
from .formats import Parser
from .lines import Line, Tally
from .model import PROFILE, BadRow, masked, shown

__all__ = ["validated"]

_T = TypeVar("_T")


def validated(
    lines: Iterator[Line],
    parser: Parser,
    tally: Tally,
    action: Action,
    overrides: Mapping[str, str],
    row: Callable[..., _T] | None,
    *,
    dedupe: bool,
    json: bool,
    file_size: int = 0,
) -> Iterator[_T | BadRow]:
    """Each record of ``lines`` checked: a BadRow, or ``row(line, domain, params, raw, offset, given, profile)``.

    With ``row`` None, valid rows are only counted in ``tally``.
    """
    first = FirstSeen(file_size=file_size).first if dedupe else None
    parse, validate, regions, quick = parser.parse, action.validate, parser.regions, parser.quick
    profiled, profiles = parser.profiled, parser.profiles
    line, valid, skipped = tally.lines, 0, 0
    given: str | None
    for line, offset, text, problem in lines:
        if problem:
            yield BadRow(line, problem, offset=offset)
            continue
        if quick and (plain := quick(text)):
            raw, params, profile = plain
        else:
            record = parse(text)
            if record is None:
                skipped += 1
                continue
            if isinstance(record, str):
                yield BadRow(line, record, offset=offset)
                continue
            raw = _as_text(record) if json else record
            profile = None
            try:
                if profiled and "Profile" in record:
                    record = dict(record)  # raw keeps it: a failures file feeds it back
                    profile = _profile(record.pop("Profile"), profiles)
                params = validate({**record, **overrides} if overrides else record)
                if regions and (region := record.get("RegionId")) is not None:
                    _add_region(params, region)
            except InvalidParams as exc:
                given = raw.get("DomainName", "").strip()
                if given and first:  # a domain listed twice with different mistakes is still listed twice
                    first(normalize_domain(given) or given.lower(), line, offset)
                yield BadRow(line, str(exc), masked(given) or None, _masked(raw), offset, profile=profile)
                continue
        name = params["DomainName"]
        given = raw["DomainName"]
        if given == name or (given := given.strip()) == name:
            given = None
        if first and (seen := first(name, line, offset)) != line:
            yield BadRow(line, f"DomainName listed twice (first at line {seen})", name, _masked(raw), offset, given,
                         profile)
        elif row is None:
            valid += 1
        else:
            yield row(line, name, params, raw, offset, given, profile)
    tally.lines, tally.valid = line, valid
    tally.skipped += skipped


def _masked(raw: Mapping[str, str]) -> dict[str, str]:
    """A bad row's cells with every key-shaped word masked (``model.masked``): stored, reported, fed back."""
    return {name: masked(value) for name, value in raw.items()}


def _add_region(params: dict[str, str], value: object) -> None:
    """A row's RegionId, checked, to be sent in place of the run's --region (which is kept when it is empty)."""
    if not isinstance(value, str):
        raise InvalidParams("MalformedParam", "RegionId must be a string")
    value = value.strip()
    if value:
        if problem := check_region(value):
            raise InvalidParams("MalformedParam", f"RegionId {problem}")
        params["RegionId"] = value


def _profile(value: object, profiles: frozenset[str] | None) -> str | None:
    """A row's Profile, checked: the aliyun CLI profile to send it with, or None (empty) for the run's credentials."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParams("MalformedParam", "Profile must be a string")
    name = value.strip()
    if not name:
        return None
    if profiles is None:
        raise InvalidParams("MalformedParam", "Profile cannot be used here: no aliyun CLI profile names were "
                                              "given to check it against")
    if not PROFILE.fullmatch(name):
        raise InvalidParams("MalformedParam", "Profile is not an aliyun CLI profile name "
                                              "(1 to 64 letters, digits, '.', '_', '@' or '-')")
    if name not in profiles:
        label = shown(name, "(name not shown: it looks like a key)", shape=PROFILE)
        raise InvalidParams("MalformedParam", f"Profile {label} is not a profile in ~/.aliyun/config.json")
    return name


def _as_text(record: Mapping[str, object]) -> dict[str, str]:
    """A JSON record's values as text, for a failures file (a number stays readable)."""
    return {k: v if isinstance(v, str) else "" if v is None else orjson.dumps(v).decode() for k, v in record.items()}
