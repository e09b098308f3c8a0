"""An inverted index whose documents are the rows of the example index, updated one row at a time.

Each term has a posting list: two growable numpy arrays (rows, values) and a length. Each row keeps
its forward record (term ids and the position of its entry in each term's list), so removing a row
touches only its own terms: the last entry of each list moves into the hole and the moved row's
forward record is fixed. Renumbering a row (the example index fills a hole with its last row) is
O(terms of that row) too. Nothing here is thread-safe: the example index calls it under its lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int32]
Floats = npt.NDArray[np.float32]


class _Postings:
    __slots__ = ("n", "rows", "values")

    def __init__(self) -> None:
        self.rows: Ints = np.empty(2, dtype=np.int32)
        self.values: Floats = np.empty(2, dtype=np.float32)
        self.n = 0

    def append(self, row: int, value: float) -> int:
        if self.n == self.rows.shape[0]:  # double: appends stay amortised O(1)
            self.rows = np.concatenate([self.rows, np.empty_like(self.rows)])
            self.values = np.concatenate([self.values, np.empty_like(self.values)])
        self.rows[self.n] = row
        self.values[self.n] = value
        self.n += 1
        return self.n - 1


class Postings:
    """Term -> (rows, values) lists plus row -> its terms; rows are dense integers 0..n-1."""

    def __init__(self) -> None:
        self._term_ids: dict[str, int] = {}
        self._terms: list[str] = []
        self._lists: list[_Postings] = []
        self._free: list[int] = []  # ids of terms whose list emptied, for reuse
        # Per row: a 2 x m array, term ids over positions in those terms' lists.
        self._forward: list[Ints] = []

    def __len__(self) -> int:
        return len(self._forward)

    @property
    def vocabulary(self) -> int:
        return len(self._term_ids)

    def nbytes(self) -> int:
        lists = sum(p.rows.nbytes + p.values.nbytes for p in self._lists)
        return lists + sum(f.nbytes for f in self._forward)

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
            for term_id, position in zip(record[0], record[1], strict=True):
                self._lists[term_id].rows[position] = row
            self._forward[row] = record
        self._forward.pop()

    def _insert(self, row: int, bag: Mapping[str, float]) -> Ints:
        record = np.empty((2, len(bag)), dtype=np.int32)
        for i, (term, value) in enumerate(bag.items()):
            term_id = self._term_ids.get(term)
            if term_id is None:
                term_id = self._new_term(term)
            record[0, i] = term_id
            record[1, i] = self._lists[term_id].append(row, value)
        return record

    def _new_term(self, term: str) -> int:
        if self._free:
            term_id = self._free.pop()
            self._terms[term_id] = term
        else:
            term_id = len(self._terms)
            self._terms.append(term)
            self._lists.append(_Postings())
        self._term_ids[term] = term_id
        return term_id

    def _remove_entries(self, row: int) -> None:
        record = self._forward[row]
        for term_id, position in zip(record[0].tolist(), record[1].tolist(), strict=True):
            plist = self._lists[term_id]
            last = plist.n - 1
            if position != last:
                moved = int(plist.rows[last])
                plist.rows[position] = moved
                plist.values[position] = plist.values[last]
                moved_record = self._forward[moved]
                moved_record[1, np.flatnonzero(moved_record[0] == term_id)] = position
            plist.n = last
            if last == 0:  # forget the term: the vocabulary follows the rows held
                del self._term_ids[self._terms[term_id]]
                self._lists[term_id] = _Postings()
                self._free.append(term_id)
        self._forward[row] = np.empty((2, 0), dtype=np.int32)

    def get(self, term: str) -> tuple[Ints, Floats] | None:
        """The rows holding `term` and their values (views: read them under the caller's lock)."""
        term_id = self._term_ids.get(term)
        if term_id is None:
            return None
        plist = self._lists[term_id]
        return plist.rows[: plist.n], plist.values[: plist.n]

    def row_terms(self, row: int) -> dict[str, float]:
        """What `row` holds, term -> value (for tests and debugging)."""
        record = self._forward[row]
        out = {}
        for term_id, position in zip(record[0].tolist(), record[1].tolist(), strict=True):
            out[self._terms[term_id]] = float(self._lists[term_id].values[position])
        return out

    def items(self) -> Iterator[tuple[str, Ints, Floats]]:
        for term, term_id in self._term_ids.items():
            plist = self._lists[term_id]
            yield term, plist.rows[: plist.n], plist.values[: plist.n]
