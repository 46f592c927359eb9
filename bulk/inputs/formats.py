"""The three input formats: one physical line in, a record, a reason it is bad, or nothing to skip.

    parser = make_parser(detect_format(path), lines, path, action, overrides, profiles, tally)
    record = parser.parse(text)   # dict: a record; str: why the line is bad; None: blank, comment or header

``.csv`` has a header row naming API parameters, and a quick path for
lines of plain values; its separator is a comma, or a semicolon when the
header is split by semicolons (a spreadsheet's CSV in a European locale);
``.jsonl``/``.ndjson`` holds one object per line; anything else is a
plain list, one domain per line with ``#`` comments.
No parameter can hold a line break, so each record is exactly one physical
line: a CSV quote left open makes that line bad and reading goes on.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..actions import Action, plain_values
from .lines import Line, Tally
from .model import PROFILE, Format, InputError, shown

__all__ = ["CsvParser", "Parser", "csv_problem", "make_parser"]


class Parser:
    """Turns one physical line into a record, a reason it is bad, or nothing; one subclass per format."""

    __slots__ = ("header_passed", "profiled", "profiles", "quick", "regions")

    def __init__(self, profiles: frozenset[str] | None = None) -> None:
        self.header_passed = False
        #: whether a record may hold a RegionId, a Profile
        self.regions = True
        self.profiled = True
        #: the profile names a Profile may take (None: none may be given)
        self.profiles = profiles
        #: (raw, params, profile) of a line whose values need no check one by one, else None
        self.quick: Callable[[str], tuple[dict[str, str], dict[str, str], str | None] | None] | None = None

    def parse(self, text: str) -> dict[str, Any] | str | None:
        """A record, why the line is bad, or None for a blank, comment or header line."""
        raise NotImplementedError


def make_parser(
    fmt: Format,
    lines: Iterator[Line],
    path: Path,
    action: Action,
    overrides: Mapping[str, str],
    profiles: frozenset[str] | None,
    tally: Tally,
) -> Parser:
    """The parser for ``fmt``; a CSV parser first reads and checks its header (InputError if bad)."""
    if fmt is Format.CSV:
        return CsvParser(lines, path, action, overrides, tally, profiles=profiles)
    if fmt is Format.JSONL:
        return _JsonlParser(overrides, profiles)
    return _ListParser(tally)


class _OneLine:
    """Feeds a csv reader one line, then ends: a quote left open cannot take in the next line."""

    __slots__ = ("text",)

    def __init__(self) -> None:
        self.text: str | None = None

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        text, self.text = self.text, None
        if text is None:
            raise StopIteration
        return text


class CsvParser(Parser):
    """A CSV input: a header row naming the action's parameters, checked when the parser is made."""

    __slots__ = ("_auth", "_feed", "_header", "_plain", "_plan", "_profile_at", "_reader", "_sep", "_width")

    def __init__(
        self,
        lines: Iterator[Line],
        path: Path,
        action: Action,
        overrides: Mapping[str, str],
        tally: Tally,
        *,
        profiles: frozenset[str] | None = None,
    ) -> None:
        super().__init__(profiles)
        self._feed = _OneLine()
        # strict: a stray quote is an error, not a guess (one reader, reused: it resets after an error)
        self._reader = csv.reader(self._feed, strict=True)
        #: "," or, for a file saved by a spreadsheet set to a European locale, ";" (told by the header)
        self._sep = ","
        self._header = self._read_header(lines, path, action, overrides, tally)
        self._width = len(self._header)
        self.regions = "RegionId" in self._header
        self.profiled = "Profile" in self._header
        self._plan_quick_lines(action, overrides)

    def fields(self, text: str) -> list[str]:
        """The fields of one line, exactly as the csv module reads them; csv.Error if it cannot."""
        body = text.rstrip("\r\n")
        # The csv module splits a line with neither quotes nor CR in the way just so, only slower.
        return body.split(self._sep) if '"' not in body and "\r" not in body else self._csv(text)

    def parse(self, text: str) -> dict[str, Any] | str | None:
        """The line's values by header column, why it cannot be read, or None for a blank line."""
        body = text.rstrip("\r\n")
        try:  # fields(), inlined: it runs for every line
            values = body.split(self._sep) if '"' not in body and "\r" not in body else self._csv(text)
        except csv.Error as exc:
            return csv_problem(exc)
        if not (values and values[0].strip()) and not "".join(values).strip():
            return None
        if len(values) == self._width:
            return dict(zip(self._header, values, strict=True))
        return f"has {len(values)} field(s), the header has {self._width}"

    def _plan_quick_lines(self, action: Action, overrides: Mapping[str, str]) -> None:
        """One regex for a whole line of plain values (see actions.plain_values), and how its groups make params.

        Such a line gets exactly what parse() and Action.validate() would give
        it, in about half the time; any other line goes the long way.
        """
        plain, header = {**plain_values(action), "Profile": PROFILE.pattern}, self._header
        required = {p.name for p in action.params if p.required}
        if any(n not in header and n not in overrides for n in required) or not overrides.keys() <= set(plain):
            return  # every row is bad: the long way says why
        if self._sep != ",":
            return  # a plain value may hold a ";": the csv module alone splits such a file
        fields = ",".join(f"({plain[n]})" if n in required else f"({plain[n]}|)" for n in header)
        # Without a Profile column, a last group that always matches empty stands for it: one code path.
        self._profile_at = header.index("Profile") if self.profiled else len(header)
        self._plain = re.compile(fields + ("" if self.profiled else "()") + r"\r?\n?").fullmatch
        # In the order Action.validate gives them (the catalogue's, then RegionId): (name, group or -1, --set value).
        names = [n for n in action.param_names if n in header or n in overrides]
        names += ["RegionId"] if "RegionId" in header else []
        self._plan = tuple((n, header.index(n) if n in header else -1, overrides.get(n, "")) for n in names)
        self._auth = action.auth_pair
        self.quick = self._quick

    def _quick(self, text: str) -> tuple[dict[str, str], dict[str, str], str | None] | None:
        match = self._plain(text)
        if match is None:
            return None
        values = match.groups()
        params = {}
        for name, index, fixed in self._plan:
            if value := values[index] if index >= 0 else fixed:
                params[name] = value
        if self._auth and params.get(self._auth[0]) == "yes" and self._auth[1] not in params:
            return None  # the long way says what is missing
        profile = values[self._profile_at]
        # A Profile column needs profiles (the header check says so), so they are not None here.
        if profile and profile not in self.profiles:  # type: ignore[operator]
            return None  # the long way says it is unknown
        # Without a Profile column, values ends with the group that stands for it: zip leaves it out.
        return dict(zip(self._header, values, strict=False)), params, profile or None

    def _csv(self, text: str) -> list[str]:
        self._feed.text = text
        try:
            return next(self._reader, [])
        finally:
            self._feed.text = None

    def _read_header(
        self, lines: Iterator[Line], path: Path, action: Action, overrides: Mapping[str, str], tally: Tally
    ) -> list[str]:
        header: list[str] | None = None
        for line, _, text, problem in lines:
            if problem:
                raise InputError(f"{path}: {problem}; the header must be UTF-8 text")
            try:
                header = self.fields(text)
            except csv.Error as exc:
                raise InputError(f"{path}: line {line}: {csv_problem(exc)}") from None
            tally.skipped += 1
            tally.lines = line
            if "".join(header).strip():
                break
        else:
            raise InputError(
                f"{path} is empty: a CSV input needs a header row naming the parameters, e.g. DomainName,NotifyUrl"
            )
        tally.header = 1
        header = [h.strip() for h in header]
        allowed = (*action.param_names, "RegionId", "Profile")
        if not set(header) <= set(allowed):
            header = self._semicolons(text, allowed) or header
        unknown = [(i, h) for i, h in enumerate(header, 1) if h not in allowed]
        if unknown:
            if "." in header[0]:
                raise InputError(
                    f"{path}: line {line} looks like data, not a header: a CSV input starts with a header row "
                    f"naming the parameters, e.g. DomainName,NotifyUrl"
                )
            raise InputError(
                f"{path}: {'; '.join(_describe_column(i, h, allowed) for i, h in unknown)} "
                f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of {action.name}, "
                f"which takes: {', '.join(allowed)}"
            )
        if "DomainName" not in header:
            raise InputError(f"{path}: no DomainName column; {action.name} needs one domain per row")
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise InputError(f"{path}: column {', '.join(twice)} appears twice in the header")
        both = sorted(set(header) & overrides.keys())
        if both:
            raise InputError(f"{path}: {', '.join(both)} is given both by a column and by --set; keep one")
        if "Profile" in header and self.profiles is None:
            raise InputError(f"{path}: a Profile column names aliyun CLI profiles, and none were given to check "
                             f"them against (read_rows(..., profiles=credentials.profile_names()))")
        return header


    def _semicolons(self, text: str, allowed: tuple[str, ...]) -> list[str] | None:
        """The header of a semicolon-separated file (a spreadsheet's CSV in a European locale), the file from
        then on read so; None if the line is not one."""
        names = [h.strip() for h in next(csv.reader([text.rstrip("\r\n")], delimiter=";"), [])]
        if len(names) < 2 or not set(names) <= set(allowed):
            return None
        self._sep = ";"
        self._reader = csv.reader(self._feed, strict=True, delimiter=";")
        return names


def csv_problem(exc: csv.Error) -> str:
    """What a csv.Error means for the line, in the operator's words."""
    if str(exc) == "unexpected end of data":
        return "a quoted field is not closed on its line (no value can span lines)"
    if str(exc).startswith("new-line character"):
        return "unreadable CSV line: a carriage return (CR) inside the line"
    return f"unreadable CSV line: {exc}"


def _describe_column(index: int, name: str, allowed: Sequence[str]) -> str:
    if not name:
        return f"column {index} (no name: a trailing comma?)"
    label = shown(name, "")
    label = f"column {label}" if label else f"column {index} (name not shown)"
    close = difflib.get_close_matches(name, allowed, n=1)
    return f"{label} (did you mean {close[0]}?)" if close else label


class _JsonlParser(Parser):
    __slots__ = ("_overrides",)

    def __init__(self, overrides: Mapping[str, str], profiles: frozenset[str] | None) -> None:
        super().__init__(profiles)
        self._overrides = overrides

    def parse(self, text: str) -> dict[str, Any] | str | None:
        """The line's JSON object, why it is not one (or clashes with --set), or None for a blank line."""
        if not text.strip():
            return None
        try:
            record = orjson.loads(text)
        except orjson.JSONDecodeError:
            return "not valid JSON"
        if not isinstance(record, dict):
            return "not a JSON object"
        both = sorted(record.keys() & self._overrides.keys())
        if both:
            return f"{', '.join(both)} is given both in the row and by --set"
        return record


class _ListParser(Parser):
    __slots__ = ("_tally",)

    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self._tally = tally
        self.regions = self.profiled = False

    def parse(self, text: str) -> dict[str, Any] | str | None:
        """The line's domain, or None for a blank or comment line and a leading DomainName header."""
        # A domain never holds '#', so a comment may also end a line.
        name = text.partition("#")[0].strip()
        if not name:
            return None
        if not self.header_passed:
            self.header_passed = True
            if name == "DomainName":  # a one-column CSV saved as a list
                self._tally.header = 1
                return None
        return {"DomainName": name}
