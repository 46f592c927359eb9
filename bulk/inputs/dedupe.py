"""Domains listed twice, found in bounded memory while a file streams past.

    first = FirstSeen(file_size=size).first
    if (seen := first(name, line, offset)) != line:
        print(f"DomainName listed twice (first at line {seen})")

A million domains must fit the memory goal: a dict of Python ints would not.
"""

from __future__ import annotations

from array import array

__all__ = ["FirstSeen"]


class FirstSeen:
    """Hashes of domain names -> the line each was first seen on.

    Two flat arrays with open addressing, 12 bytes a slot, at most half the
    slots in use: 25 to 50 bytes a domain, where a dict of Python ints would
    take about 100 (a million domains would not fit the memory goal). A
    false "listed twice" needs two names with the same 64-bit ``hash()``:
    about 3e-8 for a million domains (and the hash is seeded per process, so
    it would not repeat on the next reading). Given the file's size, the
    table grows to what the file needs at the density read so far (at most
    16 times larger at once, in case the first lines are unusually short):
    each growth moves every name, in Python.
    """

    __slots__ = ("_count", "_file_size", "_keys", "_lines", "_mask")

    def __init__(self, *, file_size: int = 0) -> None:
        self._file_size = file_size
        self._count = 0
        self._alloc(1 << 14)

    def _alloc(self, size: int) -> None:
        # Repeated in place: array("Q", bytes(n)) would first build a bytes object as big.
        self._keys = array("Q", [0]) * size  # 0 marks a free slot
        self._lines = array("I", [0]) * size
        self._mask = size - 1

    def first(self, name: str, line: int, offset: int) -> int:
        """The line ``name`` (in its DNS form) was first seen on (``line``, at byte ``offset``, if new)."""
        key = hash(name) & 0xFFFF_FFFF_FFFF_FFFF or 1
        keys, mask = self._keys, self._mask
        i = key & mask
        while k := keys[i]:
            if k == key:
                return self._lines[i]
            i = (i + 1) & mask
        keys[i] = key
        self._lines[i] = line
        self._count += 1
        if self._count * 2 > mask:
            self._grow(self._count * self._file_size // offset if offset else 0)
        return line

    def _grow(self, expected: int) -> None:
        old_keys, old_lines = self._keys, self._lines
        size = len(old_keys)
        self._alloc(min(max(size * 2, 1 << (2 * expected).bit_length()), size * 16))
        keys, lines, mask = self._keys, self._lines, self._mask
        for key, line in zip(old_keys, old_lines, strict=True):
            if key:  # every key is new here: find a free slot, as first() does
                i = key & mask
                while keys[i]:
                    i = (i + 1) & mask
                keys[i] = key
                lines[i] = line
