"""The wire format of embeddings in Example status: base64 of little-endian float32 or float16.

float16 halves what each Example stores (768 bytes raw at d=384, not 1,536) and, on unit vectors, moves
cosine scores by about 1e-4: far below what separates neighbours. The reader needs no flag: the byte
length against `embeddingDim` tells the two apart, so Examples written before a switch keep working.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Literal

import numpy as np

from blocklearn.embed import Matrix

StorageDtype = Literal["float32", "float16"]
_WIRE = {"float32": "<f4", "float16": "<f2"}


def encode(vector: Matrix, dtype: StorageDtype = "float32") -> str:
    return base64.b64encode(np.asarray(vector, dtype=_WIRE[dtype]).tobytes()).decode("ascii")


def decode(data: str, dim: int | None = None) -> Matrix:
    """Decode one vector as float32; raises ValueError when the payload is not `dim` values.

    With `dim`, a payload of 2*dim bytes is float16 and one of 4*dim bytes float32; without it, float32.
    """
    raw = base64.b64decode(data, validate=True)
    if dim is not None and len(raw) == 2 * dim:
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if len(raw) % 4:
        raise ValueError(f"embedding has {len(raw)} bytes, not a whole number of float32 values")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)
    if dim is not None and vector.shape[0] != dim:
        raise ValueError(f"embedding has dimension {vector.shape[0]}, expected {dim}")
    return vector


def text_hash(text: str, model: str) -> str:
    """Identifies what was embedded: a changed text or model makes the stored vector stale."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()[:32]
