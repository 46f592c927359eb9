"""The receiver's keys: every keys file is a named generation, each domain has its own keys.

    ring = load_keyring([Path("keys/")])              # keys/keys-2026-10.csv, keys/keys-2026-11.csv
    ring.names                                        # ("keys-2026-10", "keys-2026-11")
    ring.keys_for("a.example.com")                    # (("keys-2026-10", <key>), ("keys-2026-11", <key>))

A generation's name is its file name without ``.csv``; name the files so
that they sort by date: "newer" means "sorts after". Sources are keys files
or directories of them. A file named as a source is taken as given; in a
directory only names that follow ``KEYS_FILE_NAME`` are keys files
(``keys-YYYY-MM.csv``, optionally a suffix of letters, digits, ``-`` and
``_`` before ``.csv``: ``keys-2026-11.csv``, ``keys-2026-11-b.csv``), so a
failures file, a checkpoint or any stray CSV beside them is never read.

One bad keys file never costs the others: it is left out and listed in the
ring's ``rejected`` (its generation, if loaded before, keeps its current
keys); of two files giving one generation the first is loaded and the later
one rejected. Only a set from which no generation loads is refused
(``KeysFileError``). A ``KeyRing`` is never changed once built: a reload
builds a new one and swaps it in whole, so a request sees either the old
keys or the new ones, never a mix. Nothing here shows a key: the repr names
generations and counts domains, a rejection names the file and the reason.

A keys file is trusted only if nobody but its reader and root could have
written it: its owner is this process's user or root, neither it nor its
directory (where it really lives, after symlinks) is writable by group or
others, and nobody else may read it. The one shared shape accepted is what
a Kubernetes Secret volume gives: owned by root, mode 0440, its group one
of this process's groups (``fsGroup``). Write keys files whole and rename
them into place (``bulk.files.write_atomic`` does): ``settled`` tells a
finished change (a rename, or a file unchanged across two looks) from one
still being written.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import MappingProxyType

from ..keys import KeysFileError, parse_keys_file

__all__ = [
    "KEYS_FILE_NAME", "Generation", "KeyRing", "Rejected", "RefusedKeysFile", "Signature", "check_trusted",
    "generation_name", "keys_files", "load_keyring", "read_trusted", "settled", "sources_signature",
]

#: the names of keys files in a keys directory (``keys-2026-11.csv``, ``keys-2026-11-b.csv``); a failures
#: file (``keys-2026-11.csv.set-snapshot-callback-auth.failures.csv``) or any other CSV there is not one
KEYS_FILE_NAME = re.compile(r"keys-[0-9]{4}-[0-9]{2}[A-Za-z0-9_-]*\.csv", re.IGNORECASE)

#: per keys file: (path, inode, mtime in ns, size); -1s for a file that cannot be looked at
Signature = tuple[tuple[str, int, int, int], ...]


def generation_name(path: str | PurePath) -> str:
    """``keys-2026-10.csv`` (or a path to it, or ``keys-2026-10``) -> ``keys-2026-10``."""
    name = PurePath(path).name
    return name[:-4] if name.lower().endswith(".csv") else name


@dataclass(frozen=True, slots=True)
class Generation:
    """One keys file: its name (the file's stem), where it was read, its key column and its keys."""

    name: str
    path: Path
    #: CallbackAuthKey or NotifyAuthKey, as the file's header says
    column: str
    #: lower-case domain -> key
    keys: Mapping[str, str] = field(repr=False)
    #: SHA-256 of the keys file's bytes as loaded (what ``bulk rotate --require-receivers`` asks for)
    sha256: str = ""

    @property
    def domains(self) -> frozenset[str]:
        """The domains this generation holds a key for (lower case)."""
        return frozenset(self.keys)


class RefusedKeysFile(KeysFileError):
    """A keys file that cannot be trusted (``kind`` "untrusted") or read ("unreadable")."""

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Rejected:
    """A keys file left out of a ring: why, in one word and in words (never a key)."""

    #: the file's name (stats name keys files, not their paths)
    file: str
    #: "untrusted", "unreadable", "malformed" or "duplicate"
    kind: str
    reason: str
    #: its generation was loaded before: the ring keeps those keys
    kept: bool = False


class KeyRing:
    """Generations sorted by name, and for each domain its keys, oldest generation first;
    ``rejected``: the keys files left out when it was built."""

    __slots__ = ("_by_domain", "generations", "rejected")

    def __init__(self, generations: Iterable[Generation], *, rejected: Iterable[Rejected] = ()) -> None:
        ordered = sorted(generations, key=lambda g: g.name)
        by_domain: dict[str, list[tuple[str, str]]] = {}
        for generation in ordered:
            for domain, key in generation.keys.items():
                by_domain.setdefault(domain, []).append((generation.name, key))
        self.generations: tuple[Generation, ...] = tuple(ordered)
        self._by_domain = MappingProxyType({d: tuple(pairs) for d, pairs in by_domain.items()})
        self.rejected: tuple[Rejected, ...] = tuple(rejected)

    @property
    def names(self) -> tuple[str, ...]:
        """The loaded generations' names, oldest first."""
        return tuple(g.name for g in self.generations)

    def keys_for(self, domain: str) -> tuple[tuple[str, str], ...]:
        """(generation, key) pairs of one domain; empty if no generation knows it."""
        return self._by_domain.get(domain.strip().lower(), ())

    def __repr__(self) -> str:
        inside = ", ".join(f"{g.name}: {len(g.keys)} domains" for g in self.generations)
        return f"KeyRing({inside})"


def keys_files(sources: Sequence[Path]) -> list[Path]:
    """The keys files the sources name: files as given, in directories those named as ``KEYS_FILE_NAME``
    says, sorted by name."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(p for p in source.iterdir() if KEYS_FILE_NAME.fullmatch(p.name)))
        else:
            files.append(source)
    return files


def sources_signature(sources: Sequence[Path]) -> Signature:
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


def settled(before: Signature, now: Signature, previous_look: Signature | None) -> bool:
    """Whether a change from ``before`` (the keys in use) to ``now`` is finished and may be loaded:
    unchanged since the previous look, or made only of renames into place and removals. A file
    changed in place, or new, may still be being written: it waits for a second look."""
    if now == previous_look:
        return True
    known = {entry[0]: entry for entry in before}
    for entry in now:
        old = known.get(entry[0])
        if old is None or (entry != old and entry[1] == old[1]):
            return False  # a new file, or one changed in place
    return True


def _refuse(path: Path, problem: str) -> RefusedKeysFile:
    return RefusedKeysFile(f"keys file {path} {problem}; it holds secrets: it must be owned by this user or root, "
                           f"mode 0600 (or 0440 owned by root with this process's group, as a Kubernetes Secret "
                           f"volume gives), in a directory only its owner can write", kind="untrusted")


def check_trusted(path: Path, file: os.stat_result, directory: os.stat_result) -> None:
    """Refuse (KeysFileError) a keys file that others could have written, or that others may read."""
    me = os.geteuid()
    mode = stat.S_IMODE(file.st_mode)
    if file.st_uid not in (me, 0):
        raise _refuse(path, f"is owned by uid {file.st_uid}, not by this user ({me}) or root")
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"is writable by group or others (mode {mode:04o})")
    if mode & stat.S_IRWXO:
        raise _refuse(path, f"is accessible by group or others (mode {mode:04o})")
    if mode & stat.S_IRWXG:
        shared = file.st_uid == 0 and not mode & (stat.S_IXGRP | stat.S_IWGRP) and (
            file.st_gid == os.getegid() or file.st_gid in os.getgroups())
        if not shared:
            raise _refuse(path, f"is accessible by group or others (mode {mode:04o})")
    if directory.st_uid not in (me, 0):
        raise _refuse(path, f"is in a directory owned by uid {directory.st_uid}, not by this user or root")
    if stat.S_IMODE(directory.st_mode) & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"is in a directory writable by group or others "
                            f"(mode {stat.S_IMODE(directory.st_mode):04o})")


def read_trusted(path: Path) -> tuple[str, dict[str, str], str]:
    """(key column, domain -> key, SHA-256 of the bytes) of a keys file that passes ``check_trusted``."""
    try:
        # One descriptor for the checks and the read: no swap in between. Symlinks are followed
        # (a Kubernetes Secret volume is made of them); the directory checked is the file's real one.
        with path.open("rb") as f:
            real = Path(os.path.realpath(path))
            check_trusted(path, os.fstat(f.fileno()), os.stat(real.parent))
            data = f.read()
    except OSError as exc:
        raise RefusedKeysFile(f"cannot read keys file {path}: {exc.strerror}", kind="unreadable") from None
    return (*parse_keys_file(path, data), hashlib.sha256(data).hexdigest())


def load_keyring(sources: Sequence[Path], *, current: KeyRing | None = None) -> KeyRing:
    """Read every keys file of the sources; a bad one is left out (and listed in ``rejected``), keeping
    ``current``'s keys of its generation if it had some. KeysFileError only if no generation loads."""
    files = keys_files(sources)
    if not files:
        raise KeysFileError(f"no keys files in {', '.join(map(str, sources)) or 'no sources'} "
                            f"(in a directory, keys files are named keys-YYYY-MM.csv or keys-YYYY-MM-<suffix>.csv)")
    before = {g.name: g for g in current.generations} if current is not None else {}
    generations: dict[str, Generation] = {}
    claimed: dict[str, Path] = {}
    rejected: list[Rejected] = []
    for path in files:
        name = generation_name(path)
        if name in claimed:
            first = claimed[name].parent.name
            rejected.append(Rejected(path.name, "duplicate", f"keys file {path.name} in {path.parent.name}/ makes "
                                     f"generation {name} again: the one in {first}/ is loaded, not this one"))
            continue
        claimed[name] = path
        try:
            column, keys, digest = read_trusted(path)
        except KeysFileError as exc:
            kind = exc.kind if isinstance(exc, RefusedKeysFile) else "malformed"
            reason = str(exc).replace(str(path), path.name)
            rejected.append(Rejected(path.name, kind, reason, kept=name in before))
            if name in before:
                generations[name] = before[name]
            continue
        generations[name] = Generation(name, path, column, MappingProxyType({d.lower(): k for d, k in keys.items()}),
                                       sha256=digest)
    if not generations:
        raise KeysFileError("no keys file loads: " + "; ".join(r.reason for r in rejected))
    return KeyRing(generations.values(), rejected=rejected)
