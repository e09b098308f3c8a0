"""Embedders behind one small protocol: text in, unit-length float32 rows out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension.

    `model` names the embedder and everything that changes its vectors, so that a vector made by another
    model (or another version of this one) is detected as stale by comparing names.
    """

    @property
    def model(self) -> str: ...

    @property
    def dim(self) -> int: ...

    async def embed(self, texts: list[str]) -> Matrix: ...


class EmbedderError(Exception):
    """An embedding request failed; `reason` is a bounded label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
