"""The receiver's keys: every keys file is a named generation, each domain has its own keys.

    ring = load_keyring([Path("keys/")])              # keys/keys-2026-10.csv, keys/keys-2026-11.csv
    ring.names                                        # ("keys-2026-10", "keys-2026-11")
    ring.keys_for("a.example.com")                    # (("keys-2026-10", <key>), ("keys-2026-11", <key>))

A generation's name is its file name without ``.csv``; name the files so
that they sort by date (``keys-YYYY-MM.csv``): "newer" means "sorts after".
Sources are keys files or directories of them (every ``*.csv`` directly
inside, hidden files left out). A ``KeyRing`` is never changed once built:
a reload builds a new one and swaps it in whole, so a request sees either
the old keys or the new ones, never a mix. Nothing here shows a key: the
repr names generations and counts domains.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import MappingProxyType

from ..keys import KeysFileError, read_keys_file

__all__ = ["Generation", "KeyRing", "generation_name", "keys_files", "load_keyring", "sources_signature"]


def generation_name(path: str | PurePath) -> str:
    """``keys-2026-10.csv`` (or a path to it, or ``keys-2026-10``) -> ``keys-2026-10``."""
    name = PurePath(path).name
    return name[:-4] if name.lower().endswith(".csv") else name


@dataclass(frozen=True, slots=True)
class Generation:
    name: str
    path: Path
    #: CallbackAuthKey or NotifyAuthKey, as the file's header says
    column: str
    #: lower-case domain -> key
    keys: Mapping[str, str] = field(repr=False)

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(self.keys)


class KeyRing:
    """Generations sorted by name, and for each domain its keys, oldest generation first."""

    __slots__ = ("generations", "_by_domain")

    def __init__(self, generations: Iterable[Generation]) -> None:
        ordered = sorted(generations, key=lambda g: g.name)
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for generation in ordered:
            for domain, key in generation.keys.items():
                by_domain.setdefault(domain, []).append((generation.name, key))
        self.generations: tuple[Generation, ...] = tuple(ordered)
        self._by_domain = MappingProxyType({d: tuple(pairs) for d, pairs in by_domain.items()})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.generations)

    def keys_for(self, domain: str) -> tuple[tuple[str, str], ...]:
        """(generation, key) pairs of one domain; empty if no generation knows it."""
        return self._by_domain.get(domain.strip().lower(), ())

    def __repr__(self) -> str:
        inside = ", ".join(f"{g.name}: {len(g.keys)} domains" for g in self.generations)
        return f"KeyRing({inside})"


def keys_files(sources: Sequence[Path]) -> list[Path]:
    """The keys files the sources name: files as given, directories' ``*.csv`` sorted by name."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and not p.name.startswith(".")))
        else:
            files.append(source)
    return files


def sources_signature(sources: Sequence[Path]) -> tuple[tuple[str, int, int, int], ...]:
    """What changes when a keys file is added, removed, rewritten or replaced (inode, mtime, size)."""
    signature = []
    for path in keys_files(sources):
        try:
            st = os.stat(path)
        except OSError:
            signature.append((str(path), -1, -1, -1))
        else:
            signature.append((str(path), st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(signature)


def load_keyring(sources: Sequence[Path]) -> KeyRing:
    """Read every keys file of the sources; any bad file (or none at all) refuses the whole set."""
    files = keys_files(sources)
    if not files:
        raise KeysFileError(f"no keys files in {', '.join(map(str, sources)) or 'no sources'}")
    generations: dict[str, Generation] = {}
    for path in files:
        name = generation_name(path)
        if name in generations:
            raise KeysFileError(f"two keys files make generation {name}: {generations[name].path} and {path}")
        column, keys = read_keys_file(path)
        generations[name] = Generation(name, path, column, MappingProxyType({d.lower(): k for d, k in keys.items()}))
    return KeyRing(generations.values())
