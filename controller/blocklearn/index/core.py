"""The example index: a growable float32 matrix, a map id -> row, and a readers-writer lock.

Foyle's InMemoryDB, made incremental: row i (stored as column i, see below) is the embedding of the
example whose id is `ids[i]`. Upsert writes one row (capacity doubles when full, so appends are
amortised O(d)); delete moves the last row into the hole and fixes the map. Nothing here reloads
everything, and nothing here knows about Kubernetes or HTTP.

The matrix is stored transposed, d x capacity: a single-query search is then `q @ M[:, :n]`, which
OpenBLAS runs twice as fast as the row-major `M[:n] @ q` on one thread (6.2 ms against 13 ms at
100k x 384, as fast as FAISS's flat index; bench/index_bench.py). A row write becomes a strided
column write, still O(d): about 4 us.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from blocklearn.embed import Matrix
from blocklearn.index.rwlock import ReadWriteLock

MAX_K = 100
# Query terms are weighted by idf**IDF_POWER; tuned on nl2bash dev (bench/embedder_quality.py).
IDF_POWER = 4


class IndexMismatchError(ValueError):
    """A vector of another dimension or model than the index's."""


@dataclass(frozen=True)
class Entry:
    """What a search returns about an example, besides its score."""

    namespace: str
    name: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float


class ExampleIndex:
    """Thread-safe nearest-neighbour index over unit-length vectors of one model."""

    def __init__(self, dim: int, model: str, *, query_idf: bool = False, capacity: int = 1024) -> None:
        self.dim = dim
        self.model = model
        self._query_idf = query_idf
        self._lock = ReadWriteLock()
        self._matrix_t: Matrix = np.zeros((dim, max(1, capacity)), dtype=np.float32)
        self._ns_codes: npt.NDArray[np.int32] = np.zeros(max(1, capacity), dtype=np.int32)
        self._ns_by_name: dict[str, int] = {}
        self._ids: list[str] = []
        self._entries: list[Entry] = []
        self._rows: dict[str, int] = {}
        # Document frequency per dimension, for query-side IDF of lexical embedders. Kept per write, so
        # term statistics follow the learned set without ever re-embedding a stored vector.
        self._df: npt.NDArray[np.int64] = np.zeros(dim, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def capacity(self) -> int:
        return int(self._matrix_t.shape[1])

    def nbytes(self) -> int:
        return int(self._matrix_t.nbytes + self._ns_codes.nbytes + self._df.nbytes)

    def vector(self, id_: str) -> Matrix | None:
        """A copy of the stored vector of an example, or None."""
        with self._lock.read():
            row = self._rows.get(id_)
            return None if row is None else self._matrix_t[:, row].copy()

    def ids(self) -> set[str]:
        with self._lock.read():
            return set(self._ids)

    def check(self, vector: Matrix, model: str) -> Matrix:
        """Validate a vector against the index; returns it as contiguous float32."""
        if model != self.model:
            raise IndexMismatchError(f"embedding model {model!r} differs from the index's {self.model!r}")
        v = np.ascontiguousarray(vector, dtype=np.float32)
        if v.shape != (self.dim,):
            raise IndexMismatchError(f"embedding has shape {v.shape}, the index expects ({self.dim},)")
        return v

    def upsert(self, id_: str, vector: Matrix, entry: Entry, model: str) -> None:
        v = self.check(vector, model)
        with self._lock.write():
            row = self._rows.get(id_)
            if row is None:
                row = len(self._ids)
                if row == self._matrix_t.shape[1]:
                    self._grow()
                self._ids.append(id_)
                self._entries.append(entry)
                self._rows[id_] = row
            else:
                self._count_terms(self._matrix_t[:, row], -1)
                self._entries[row] = entry
            self._matrix_t[:, row] = v
            self._count_terms(v, +1)
            self._ns_codes[row] = self._ns_by_name.setdefault(entry.namespace, len(self._ns_by_name))

    def delete(self, id_: str) -> bool:
        with self._lock.write():
            row = self._rows.pop(id_, None)
            if row is None:
                return False
            self._count_terms(self._matrix_t[:, row], -1)
            last = len(self._ids) - 1
            if row != last:
                self._matrix_t[:, row] = self._matrix_t[:, last]
                self._ns_codes[row] = self._ns_codes[last]
                self._ids[row] = self._ids[last]
                self._entries[row] = self._entries[last]
                self._rows[self._ids[row]] = row
            self._matrix_t[:, last] = 0
            self._ids.pop()
            self._entries.pop()
            return True

    def _count_terms(self, vector: Matrix, sign: int) -> None:
        if self._query_idf:  # only lexical embedders use document frequencies
            self._df[vector != 0] += sign

    def _grow(self) -> None:
        capacity = self._matrix_t.shape[1] * 2
        matrix_t = np.zeros((self.dim, capacity), dtype=np.float32)
        matrix_t[:, : len(self._ids)] = self._matrix_t[:, : len(self._ids)]
        codes = np.zeros(capacity, dtype=np.int32)
        codes[: len(self._ids)] = self._ns_codes[: len(self._ids)]
        self._matrix_t, self._ns_codes = matrix_t, codes

    def _weigh(self, query: Matrix, n: int) -> Matrix:
        if not self._query_idf or n == 0:
            return query
        idf = np.log((1.0 + n) / (1.0 + self._df)).astype(np.float32) + np.float32(1.0)
        weighted = query * idf**IDF_POWER
        norm = np.linalg.norm(weighted)
        return weighted / norm if norm > 0 else query

    def search(
        self, query: Matrix, k: int = 3, *, min_score: float = -1.0, namespace: str | None = None
    ) -> list[Hit]:
        """Top-k by cosine; `namespace` restricts to one namespace (None searches all)."""
        if not 1 <= k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K}")
        q = np.ascontiguousarray(query, dtype=np.float32)  # a float64 query would upcast the matrix
        if q.shape != (self.dim,):
            raise IndexMismatchError(f"query has shape {q.shape}, the index expects ({self.dim},)")
        with self._lock.read():
            n = len(self._ids)
            if n == 0:
                return []
            scores = self._weigh(q, n) @ self._matrix_t[:, :n]
            if namespace is not None:
                code = self._ns_by_name.get(namespace)
                if code is None:
                    return []
                scores[self._ns_codes[:n] != code] = -np.inf
            k = min(k, n)
            top = np.argpartition(scores, n - k)[n - k :]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [
                Hit(self._entries[i], float(scores[i]))
                for i in top
                if np.isfinite(scores[i]) and scores[i] >= min_score
            ]
