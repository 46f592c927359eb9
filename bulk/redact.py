"""One redactor: every message bulk writes to a file or a terminal passes through it.

    message = redact(body["Message"], secrets=secret_values(sent))  # an echoed key becomes its fingerprint
    log.write({"message": redact(failure.message)})                  # a named secret's value is masked
    stored = redact_overrides(action, overrides)                     # --set values as a plan or checkpoint keeps them

Messages come from the service (which echoes parameters back; a V1
SignatureDoesNotMatch shows its whole string to sign, SecurityToken
included), from bulk itself, and from paths not yet written. One function
that the report, the ``--log-file``, the checkpoint's message column, the
plan, ``bulk report`` and the terminal all call means a new path cannot
forget it. It does three things, each safe to repeat:

- known secret values (what the call sent) become their fingerprints;
- the value after a secret parameter's name (``NotifyAuthKey=``, once or
  twice URL-encoded as a string to sign holds it, or a JSON member) is
  masked, whatever it is;
- a URL loses its query string, where V3 calls carry every parameter.

It is a net, not the rule: a failure message is built from what bulk knows
(an exception's type, a status), never from a library exception's text
(``error_kind``).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterable, Mapping

from .actions import SECRET_PARAMS, Action
from .credentials import fingerprint

__all__ = ["MASK", "SECRET_NAMES", "error_kind", "redact", "redact_overrides", "secret_values"]

#: what stands for a secret value that is masked rather than fingerprinted
MASK = "******"
#: parameter names whose values are secret wherever they appear
SECRET_NAMES: frozenset[str] = SECRET_PARAMS | {"SecurityToken", "AccessKeySecret"}

# A name, then "=" (plain, %3D, or %253D once more encoded) or a JSON member's '": "'; the value runs to the
# next separator of a query (&, %26, %2526), a quote or white space.
_NAMED = re.compile(
    r"(?P<name>" + "|".join(sorted(SECRET_NAMES)) + r")"
    r"(?P<sep>=|%3D|%253D|\"\s*:\s*\")"
    r"(?P<value>(?:(?!%26|%2526)[^&\s\"'<>])+)",
    re.IGNORECASE,
)
# Already redacted: the mask (also URL-encoded), or a fingerprint.
_KEPT = re.compile(r"(?:\*|%2A)+|fp:[0-9a-f]{8}", re.IGNORECASE)
_QUERY = re.compile(r"(?P<url>\bhttps?://[^\s?#\"'<>]*)\?[^\s\"'<>]*", re.IGNORECASE)


def secret_values(params: Mapping[str, str]) -> tuple[str, ...]:
    """The values of ``params`` that are secrets, for ``redact(..., secrets=...)``."""
    return tuple(v for k, v in params.items() if k in SECRET_NAMES and v)


def redact(text: str, *, secrets: Iterable[str] = ()) -> str:
    """``text`` fit for a file or a terminal: secrets fingerprinted or masked, URLs without their query."""
    for value in secrets:
        if value and value in text:
            text = text.replace(value, fingerprint(value))
    text = _NAMED.sub(_masked, text)
    return _QUERY.sub(r"\g<url>?" + MASK, text)


def redact_overrides(action: Action, overrides: Mapping[str, str]) -> dict[str, str]:
    """--set values as they may be stored and shown: secrets become fingerprints."""
    return {k: fingerprint(v) if k in action.secret_names else v for k, v in overrides.items()}


def error_kind(exc: BaseException) -> str:
    """What a message may say of an exception from a library: its type, and an OS or SQLite error's name.

    Never its text: aiohttp's holds the whole URL, and a V3 URL holds every
    parameter, auth keys included.
    """
    kind = type(exc).__name__
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and number in errno.errorcode:
        return f"{kind} ({errno.errorcode[number]}: {os.strerror(number)})"
    if isinstance(name := getattr(exc, "sqlite_errorname", None), str):
        return f"{kind} ({name})"
    return kind


def _masked(match: re.Match[str]) -> str:
    if _KEPT.fullmatch(match["value"]):
        return match[0]
    return f"{match['name']}{match['sep']}{MASK}"
