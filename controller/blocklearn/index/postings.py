"""An inverted index whose documents are the rows of the example index, updated one row at a time.

Each term has a posting list: one growable byte buffer of (row int32, value float32) entries, read
as numpy views. Removing a row takes its bag (the caller keeps each row's text, so the bag is
recomputed) and, for each of its terms, finds the row in the term's list and moves the list's last
entry into the hole; renumbering a row (the example index fills a hole with its last row) finds its
entries the same way. Finding is a scan of one list, paid on a delete or a changed text only;
appends, searches and status-only updates (the text unchanged: nothing to do) pay nothing for it.
Nothing here is thread-safe: the example index calls it under its lock.

Memory, at 100k examples and ~130k terms: two numpy arrays per term cost about 300 bytes before a
single entry, a bytearray 57 (it grows by an eighth, not twice); a forward record per row (term ids
and positions) cost ~360 bytes a row, 36 MB, for what a scan finds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float32]

_ENTRY = struct.Struct("<if")  # a posting: row, value
_ENTRIES = np.dtype([("row", "<i4"), ("value", "<f4")])
_ROW = struct.Struct("<i")
_SHORT = 256  # entries up to which a byte search beats numpy's setup


class Postings:
    """Term -> (rows, values) lists; rows are dense integers 0..n-1, each given with its bag."""

    def __init__(self) -> None:
        self._term_ids: dict[str, int] = {}
        self._terms: list[str] = []
        self._lists: list[bytearray] = []
        self._free: list[int] = []  # ids of terms whose list emptied, for reuse
        self._rows = 0

    def __len__(self) -> int:
        return self._rows

    @property
    def vocabulary(self) -> int:
        return len(self._term_ids)

    def nbytes(self) -> int:
        return sum(map(len, self._lists))

    def append(self, bag: Mapping[str, float]) -> int:
        """Add a row holding `bag` (term -> value); returns its row number."""
        row = self._rows
        self._insert(row, bag)
        self._rows += 1
        return row

    def replace(self, row: int, old: Mapping[str, float], new: Mapping[str, float]) -> None:
        """Row `row` held `old`; now it holds `new`."""
        self._remove(row, old)
        self._insert(row, new)

    def pop_into(self, row: int, bag: Mapping[str, float], last_bag: Mapping[str, float]) -> None:
        """Remove `row` (holding `bag`), then move the last row (holding `last_bag`) into its place, as
        the example index does."""
        self._remove(row, bag)
        last = self._rows - 1
        if row != last:
            for term in last_bag:
                plist = self._lists[self._term_ids[term]]
                position = _find(plist, last)
                _ENTRY.pack_into(plist, 8 * position, row, _ENTRY.unpack_from(plist, 8 * position)[1])
        self._rows -= 1

    def _insert(self, row: int, bag: Mapping[str, float]) -> None:
        term_ids, lists = self._term_ids, self._lists
        for term, value in bag.items():
            term_id = term_ids.get(term)
            if term_id is None:
                term_id = self._new_term(term)
            lists[term_id] += _ENTRY.pack(row, value)

    def _new_term(self, term: str) -> int:
        if self._free:
            term_id = self._free.pop()
            self._terms[term_id] = term
        else:
            term_id = len(self._terms)
            self._terms.append(term)
            self._lists.append(bytearray())
        self._term_ids[term] = term_id
        return term_id

    def _remove(self, row: int, bag: Mapping[str, float]) -> None:
        for term in bag:
            term_id = self._term_ids[term]
            plist = self._lists[term_id]
            position, last = _find(plist, row), len(plist) // 8 - 1
            if position != last:
                plist[8 * position : 8 * position + 8] = plist[8 * last :]
            del plist[8 * last :]
            if last == 0:  # forget the term: the vocabulary follows the rows held
                del self._term_ids[term]
                self._lists[term_id] = bytearray()
                self._free.append(term_id)

    def _view(self, term_id: int) -> tuple[Ints, Floats]:
        entries = np.frombuffer(self._lists[term_id], dtype=_ENTRIES)
        return entries["row"], entries["value"]

    def get(self, term: str) -> tuple[Ints, Floats] | None:
        """The rows holding `term` and their values (views: read them under the caller's lock, and
        drop them before a write: a list cannot grow while a view of it lives)."""
        term_id = self._term_ids.get(term)
        return None if term_id is None else self._view(term_id)

    def row_terms(self, row: int, bag: Mapping[str, float]) -> dict[str, float]:
        """What `row`, given as holding `bag`, holds: term -> value (for tests and debugging)."""
        out = {}
        for term in bag:
            plist = self._lists[self._term_ids[term]]
            out[term] = float(_ENTRY.unpack_from(plist, 8 * _find(plist, row))[1])
        return out

    def items(self) -> Iterator[tuple[str, Ints, Floats]]:
        for term, term_id in self._term_ids.items():
            yield term, *self._view(term_id)


def _find(plist: bytearray, row: int) -> int:
    """The position of `row`'s entry in a posting list (it holds one). Most lists are short: a byte
    search finds the row there in a microsecond; numpy scans long ones (30 us for 50k entries)."""
    if len(plist) > 8 * _SHORT:
        return int((np.frombuffer(plist, dtype="<i4")[::2] == row).argmax())
    key, start = _ROW.pack(row), 0
    while (at := plist.find(key, start)) % 8:  # a match inside a value, not a row: look further
        if at < 0:
            raise LookupError(f"row {row} is not in the list")
        start = at + 1
    return at // 8
