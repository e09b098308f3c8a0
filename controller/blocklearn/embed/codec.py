"""The wire format of embeddings in Example status: base64 of little-endian float32."""

from __future__ import annotations

import base64
import hashlib

import numpy as np

from blocklearn.embed import Matrix


def encode(vector: Matrix) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode(data: str, dim: int | None = None) -> Matrix:
    """Decode one vector; raises ValueError when the payload is not `dim` float32 values."""
    raw = base64.b64decode(data, validate=True)
    if len(raw) % 4:
        raise ValueError(f"embedding has {len(raw)} bytes, not a whole number of float32 values")
    vector = np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)
    if dim is not None and vector.shape[0] != dim:
        raise ValueError(f"embedding has dimension {vector.shape[0]}, expected {dim}")
    return vector


def text_hash(text: str, model: str) -> str:
    """Identifies what was embedded: a changed text or model makes the stored vector stale."""
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()[:32]
