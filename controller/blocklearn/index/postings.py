"""An inverted index whose documents are the rows of the example index, updated one row at a time.

Each term has a posting list: one growable byte buffer of (row int32, value float32) entries, read
as numpy views. Each row keeps its forward record (term ids and the position of its entry in each
term's list), so removing a row touches only its own terms: the last entry of each list moves into
the hole and the moved row's forward record is fixed. Renumbering a row (the example index fills a
hole with its last row) is O(terms of that row) too. Nothing here is thread-safe: the example index
calls it under its lock.

Why bytes and not a pair of numpy arrays per term: at 100k examples there are ~130k terms, and two
arrays (and their doubling) cost about 300 bytes a term before a single entry; a bytearray costs 57
and grows by an eighth. A row's forward record is immutable bytes, rebuilt when an entry moves.
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
_LINK = struct.Struct("<ii")  # a forward record's item: term id, position in that term's list


class Postings:
    """Term -> (rows, values) lists plus row -> its terms; rows are dense integers 0..n-1."""

    def __init__(self) -> None:
        self._term_ids: dict[str, int] = {}
        self._terms: list[str] = []
        self._lists: list[bytearray] = []
        self._free: list[int] = []  # ids of terms whose list emptied, for reuse
        # Per row: (term id, position) pairs, int32, packed.
        self._forward: list[bytes] = []

    def __len__(self) -> int:
        return len(self._forward)

    @property
    def vocabulary(self) -> int:
        return len(self._term_ids)

    def nbytes(self) -> int:
        return sum(map(len, self._lists)) + sum(map(len, self._forward))

    def append(self, bag: Mapping[str, float]) -> int:
        """Add a row holding `bag` (term -> value); returns its row number."""
        row = len(self._forward)
        self._forward.append(self._insert(row, bag))
        return row

    def replace(self, row: int, bag: Mapping[str, float]) -> None:
        self._remove_entries(row)
        self._forward[row] = self._insert(row, bag)

    def pop_into(self, row: int) -> None:
        """Remove `row`, then move the last row into its place (as the example index does)."""
        self._remove_entries(row)
        last = len(self._forward) - 1
        if row != last:
            record = self._forward[last]
            for term_id, position in _LINK.iter_unpack(record):
                _ENTRY.pack_into(self._lists[term_id], 8 * position, row, self._value(term_id, position))
            self._forward[row] = record
        self._forward.pop()

    def _value(self, term_id: int, position: int) -> float:
        return float(_ENTRY.unpack_from(self._lists[term_id], 8 * position)[1])

    def _insert(self, row: int, bag: Mapping[str, float]) -> bytes:
        record = bytearray()
        for term, value in bag.items():
            term_id = self._term_ids.get(term)
            if term_id is None:
                term_id = self._new_term(term)
            plist = self._lists[term_id]
            record += _LINK.pack(term_id, len(plist) // 8)
            plist += _ENTRY.pack(row, value)
        return bytes(record)

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

    def _remove_entries(self, row: int) -> None:
        for term_id, position in _LINK.iter_unpack(self._forward[row]):
            plist = self._lists[term_id]
            last = len(plist) // 8 - 1
            if position != last:
                moved = _ENTRY.unpack_from(plist, 8 * last)[0]
                plist[8 * position : 8 * position + 8] = plist[8 * last :]
                self._relink(moved, term_id, position)
            del plist[8 * last :]
            if last == 0:  # forget the term: the vocabulary follows the rows held
                del self._term_ids[self._terms[term_id]]
                self._lists[term_id] = bytearray()
                self._free.append(term_id)
        self._forward[row] = b""

    def _relink(self, row: int, term_id: int, position: int) -> None:
        """Row `row`'s entry for `term_id` now sits at `position` of that term's list."""
        links = np.frombuffer(self._forward[row], dtype=np.int32).reshape(-1, 2).copy()
        links[links[:, 0] == term_id, 1] = position
        self._forward[row] = links.tobytes()

    def _view(self, term_id: int) -> tuple[Ints, Floats]:
        entries = np.frombuffer(self._lists[term_id], dtype=_ENTRIES)
        return entries["row"], entries["value"]

    def get(self, term: str) -> tuple[Ints, Floats] | None:
        """The rows holding `term` and their values (views: read them under the caller's lock, and
        drop them before a write: a list cannot grow while a view of it lives)."""
        term_id = self._term_ids.get(term)
        return None if term_id is None else self._view(term_id)

    def row_terms(self, row: int) -> dict[str, float]:
        """What `row` holds, term -> value (for tests and debugging)."""
        return {
            self._terms[term_id]: self._value(term_id, position)
            for term_id, position in _LINK.iter_unpack(self._forward[row])
        }

    def items(self) -> Iterator[tuple[str, Ints, Floats]]:
        for term, term_id in self._term_ids.items():
            yield term, *self._view(term_id)
