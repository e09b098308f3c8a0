"""The no-model embedder: hashed word and character n-grams, no network and no weights.

With the `hashing` setting no vector is stored: the index builds the lexical channel from each
Example's text itself (exact word and bigram features of `features`, see `blocklearn.index.lexical`).
`embed` stays for measurements of the hashed dense vectors (bench/embedder_quality.py).

Each text becomes three bags of features: words, word bigrams and character 3-5-grams of each word
(padded, like scikit-learn's `char_wb`). Counts are damped (1 + log tf), each bag is normalised on its
own and weighted, and the features are hashed with a sign bit into `dim` buckets. The features hold no
corpus statistics, so nothing stored drifts; the index weighs a query's features by the inverse
document frequencies of what it holds now.
"""

from __future__ import annotations

import itertools
import math
import re
import zlib
from collections import Counter

import numpy as np

from blocklearn.embed import Embedder, Matrix

_TOKEN = re.compile(r"[a-z0-9_]+|[^\sa-z0-9_]", re.IGNORECASE)

# Relative weights of the bags; char n-grams carry most of the signal on short paraphrased requests.
WORD_WEIGHT = 1.0
BIGRAM_WEIGHT = 0.5
CHAR_WEIGHT = 1.4
VERSION = 1


# Not cached: crc32 of a short string costs what a cache lookup does (measured: 0.72 ms a text
# either way), and a cache of 2**18 features held tens of MB in the controller for nothing.
def _bucket(feature: str, dim: int) -> int:
    """A signed bucket: sign in the sign of the result, bucket in its magnitude minus one."""
    h = zlib.crc32(feature.encode("utf-8"))
    index = (h >> 1) % dim
    return index + 1 if h & 1 else -(index + 1)


def tokens(text: str) -> list[str]:
    """Lower-cased words (letters, digits, underscores) and single punctuation characters."""
    return [t.lower() for t in _TOKEN.findall(text)]


def features(text: str, chars: bool = True) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Words (punctuation tokens included), word bigrams and, unless `chars` is false, character
    3-5-grams of each word."""
    words = tokens(text)
    alnum = [w for w in words if w[0].isalnum() or w[0] == "_"]
    bigrams = Counter(f"{a} {b}" for a, b in itertools.pairwise(alnum))
    grams: Counter[str] = Counter()
    for word in alnum if chars else ():
        padded = f" {word} "
        for n in (3, 4, 5):
            grams.update(padded[i : i + n] for i in range(max(1, len(padded) - n + 1)))
    return Counter(words), bigrams, grams


class HashingEmbedder:
    """Deterministic lexical embedder; `dim` trades memory for fewer hash collisions."""

    def __init__(self, dim: int = 1024) -> None:
        if dim < 16:
            raise ValueError("hashing dimension must be at least 16")
        self._dim = dim

    @property
    def model(self) -> str:
        return f"hashing-v{VERSION}-d{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def embed_one(self, text: str) -> Matrix:
        vector = np.zeros(self._dim, dtype=np.float32)
        for bag, weight, prefix in zip(
            features(text), (WORD_WEIGHT, BIGRAM_WEIGHT, CHAR_WEIGHT), "wbc", strict=True
        ):
            if not bag:
                continue
            damped = {f: 1.0 + math.log(c) for f, c in bag.items()}
            scale = weight / math.sqrt(sum(v * v for v in damped.values()))
            for feature, value in damped.items():
                b = _bucket(prefix + feature, self._dim)
                vector[abs(b) - 1] += math.copysign(value * scale, b)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    def embed_sync(self, texts: list[str]) -> Matrix:
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed_one(text)
        return out

    async def embed(self, texts: list[str]) -> Matrix:
        return self.embed_sync(texts)


def stores_vectors(embedder: Embedder) -> bool:
    """Whether Examples store this embedder's vectors: not for `hashing`, whose features the index
    computes from each Example's text (sparse, in `blocklearn.index.lexical`), so that no 16 KiB
    lexical vector is written to etcd. Asks nothing of the embedder: an OpenAI-compatible one knows
    its dimension only after it first answered."""
    return not isinstance(embedder, HashingEmbedder)


def dense_dim(embedder: Embedder) -> int:
    """The dimension of the index's dense channel for this embedder; 0 for none (`hashing`)."""
    return embedder.dim if stores_vectors(embedder) else 0
