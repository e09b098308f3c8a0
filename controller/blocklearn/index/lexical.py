"""The lexical channel: each example's words and word bigrams, exact and sparse, scored with
query-side IDF.

The hashing embedder's word and bigram features (`blocklearn.embed.hashing`) without the hashing and
with plurals folded: a sparse bag of exact feature strings per example, kept in an inverted index
(`Postings`), so nothing dense is stored anywhere. A document's bag holds no corpus statistics
(damped counts, each bag normalised and weighted, the whole normalised to unit length); the query's
features are weighted by `idf**IDF_POWER` from the document frequencies of the examples held now, as
the dense hashing index did, and its score is a cosine in [0, 1].

Choices measured on the public nl2bash dev half (bench/embedder_quality.py, docs/eval): exact features
beat the 4096-bucket hashed ones alone (hit@5 0.522 against 0.486), and the character n-grams that
helped under hash collisions hurt once exact (0.508 with them) while holding six times the entries
(167 against 27 per example). Folding plurals adds 0.008 alone and is neutral in the hybrid (within
three queries of 496 on either half); it is there so that "pods" finds "pod". The bigram weight (0.25)
and IDF_POWER (4) were chosen on one half of the dev queries and checked on the other (see the
README's quality section).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import numpy.typing as npt

from blocklearn.embed.hashing import tokens
from blocklearn.index.postings import Postings

WORD_WEIGHT = 1.0
BIGRAM_WEIGHT = 0.25
IDF_POWER = 4
# Query terms weighing less than this share of the heaviest one are skipped: with idf**4 a word
# in half the examples weighs ~1e-3 of a rare one, and its posting list is the longest to add.
MIN_TERM_SHARE = 1e-3

Scores = npt.NDArray[np.float32]


def fold_plural(word: str) -> str:
    """English plurals to their singular, so that "pods" finds "pod": -ies to -y, -es after s, x, z,
    ch and sh, else a final -s (not -ss, -us, -is, nor in words of three letters such as "has")."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    return word[:-1]


def bag(text: str) -> dict[str, float]:
    """A text's unit-length sparse features: words (punctuation tokens included) and word bigrams,
    plurals folded."""
    words = [fold_plural(w) for w in tokens(text)]
    alnum = [w for w in words if w[0].isalnum() or w[0] == "_"]
    bigrams = Counter(f"{a} {b}" for a, b in itertools.pairwise(alnum))
    out: dict[str, float] = {}
    for counts, weight, prefix in ((Counter(words), WORD_WEIGHT, "w"), (bigrams, BIGRAM_WEIGHT, "b")):
        if not counts:
            continue
        damped = {f: 1.0 + math.log(c) for f, c in counts.items()}
        scale = weight / math.sqrt(sum(v * v for v in damped.values()))
        for feature, value in damped.items():
            out[prefix + feature] = value * scale
    norm = math.sqrt(sum(v * v for v in out.values()))
    return {f: v / norm for f, v in out.items()} if norm > 0 else {}


class LexicalIndex:
    """Rows of bags in an inverted index; scores every row for a query text. Not thread-safe: the
    example index calls it under its own lock, with the same row numbers as its matrix."""

    def __init__(self) -> None:
        self.postings = Postings()

    def __len__(self) -> int:
        return len(self.postings)

    def nbytes(self) -> int:
        return self.postings.nbytes()

    def append(self, text: str) -> int:
        return self.postings.append(bag(text))

    def replace(self, row: int, old: str, text: str) -> None:
        """Row `row` held `old`; now `text` (nothing to do when they are equal)."""
        if text != old:
            self.postings.replace(row, bag(old), bag(text))

    def pop_into(self, row: int, text: str, last_text: str) -> None:
        """Remove `row` (it held `text`) and move the last row (it holds `last_text`) into its place."""
        self.postings.pop_into(row, bag(text), bag(last_text))

    def query(self, text: str) -> list[tuple[str, float]]:
        """The query's terms known to the index with their IDF weights, heaviest first, normalised."""
        n = len(self.postings)
        weighted = []
        for term, value in bag(text).items():
            found = self.postings.get(term)
            if found is None:
                continue
            idf = math.log((1 + n) / (1 + len(found[0]))) + 1.0
            weighted.append((term, value * idf**IDF_POWER))
        if not weighted:
            return []
        norm = math.sqrt(sum(w * w for _, w in weighted))
        weighted.sort(key=lambda tw: -tw[1])
        floor = weighted[0][1] * MIN_TERM_SHARE
        return [(t, w / norm) for t, w in weighted if w >= floor]

    def scores(self, text: str) -> Scores:
        """The cosine of every row with the IDF-weighted query (0 for rows sharing no term)."""
        out = np.zeros(len(self.postings), dtype=np.float32)
        for term, weight in self.query(text):
            found = self.postings.get(term)
            if found is not None:
                rows, values = found
                out[rows] += np.float32(weight) * values  # a row is at most once in a list
        return out
