"""Prometheus text exposition format (version 0.0.4), for a few hand-made metric families.

    family = Family("bulk_receiver_callbacks_accepted_total", "counter", "Callbacks accepted.")
    family.add(3, generation="keys-2026-10", domain="a.example.com")
    text = render([family])     # "# HELP ...\\n# TYPE ...\\nbulk_..._total{generation=...} 3\\n"

Every scraper reads this format: a ``# HELP`` and a ``# TYPE`` line per
family, then one sample per line. Label values escape backslash, double
quote and line feed; help texts escape backslash and line feed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["CONTENT_TYPE", "Family", "escape_help", "escape_label", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_KINDS = frozenset({"counter", "gauge", "untyped"})


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


class Family:
    """One metric name, its kind, its help text and its samples."""

    __slots__ = ("help", "kind", "name", "samples")

    def __init__(self, name: str, kind: str, help: str) -> None:
        if kind not in _KINDS:
            raise ValueError(f"metric kind must be one of {', '.join(sorted(_KINDS))}, got {kind!r}")
        self.name = name
        self.kind = kind
        self.help = help
        self.samples: list[tuple[tuple[tuple[str, str], ...], float]] = []

    def add(self, value: float, **labels: str) -> Family:
        self.samples.append((tuple(labels.items()), value))
        return self


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            text = ",".join(f'{name}="{escape_label(str(v))}"' for name, v in labels)
            lines.append(f"{family.name}{{{text}}} {_number(value)}" if text else f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"
