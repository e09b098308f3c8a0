"""Embedders behind one small protocol: text in, unit-length float32 rows out."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

# onnxruntime >= 1.29 sends usage telemetry to Microsoft from Linux too (onnxruntime PR #27379) unless
# this is set before onnxruntime is first imported; setting it later does not help (measured). This
# package is imported before any module of ours imports onnxruntime. tests/test_offline.py caught the
# lookups of mobile.events.data.microsoft.com; an operator who sets the variable keeps their value.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


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
    """An embedding request failed; `reason` is a bounded label for metrics.

    `permanent`: retrying the same request cannot help (a wrong key, an unknown model), so it waits
    for a change. `retry_after`: how long the endpoint asked to wait, in seconds, when it said.
    """

    def __init__(
        self, reason: str, message: str, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class ModelUnavailable(RuntimeError):
    """A local model's files are missing or not the pinned ones; the message says what to install."""
