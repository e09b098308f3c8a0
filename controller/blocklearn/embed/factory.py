"""Build the configured embedder; the controller and the index must build the same one."""

from __future__ import annotations

from blocklearn.embed import Embedder
from blocklearn.embed.hashing import HashingEmbedder
from blocklearn.settings import Settings


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        from blocklearn.embed.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    if settings.embedder == "semantic":
        from blocklearn.embed.semantic import SemanticEmbedder

        return SemanticEmbedder.from_settings(settings)
    return HashingEmbedder(settings.hashing_dim)
