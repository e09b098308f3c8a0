"""Build the configured embedder; the controller and the index must build the same one."""

from __future__ import annotations

from controller.embed import Embedder
from controller.embed.hashing import HashingEmbedder
from controller.settings import Settings


def build_embedder(settings: Settings) -> Embedder:
    if settings.embedder == "openai":
        from controller.embed.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    return HashingEmbedder(settings.hashing_dim)
