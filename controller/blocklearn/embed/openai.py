"""Any OpenAI-compatible `/v1/embeddings` endpoint, batched, with timeouts and retries."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import numpy as np

from blocklearn.embed import EmbedderError, Matrix
from blocklearn.settings import Settings

RETRIES = 3


class OpenAIEmbedder:
    def __init__(
        self, base_url: str, model: str, api_key: str, timeout: float, dim: int | None = None
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._dim = dim

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        if settings.openai_api_key_file:
            key = Path(settings.openai_api_key_file).read_text().strip()
        else:
            key = os.environ.get(settings.openai_api_key_env, "")
        return cls(settings.openai_base_url, settings.openai_model, key, settings.embed_timeout_seconds)

    @property
    def model(self) -> str:
        return f"openai:{self._model}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError("the dimension is known after the first embedding; call probe() first")
        return self._dim

    async def probe(self) -> int:
        """Learn the dimension from the endpoint itself."""
        vectors = await self.embed(["dimension probe"])
        return int(vectors.shape[1])

    async def embed(self, texts: list[str]) -> Matrix:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        body = {"model": self._model, "input": texts}
        last: EmbedderError | None = None
        for attempt in range(RETRIES):
            try:
                async with (
                    aiohttp.ClientSession(timeout=self._timeout) as session,
                    session.post(self._url, json=body, headers=headers) as resp,
                ):
                    if resp.status >= 500 or resp.status == 429:
                        raise EmbedderError(
                            f"http_{resp.status}", f"embedding endpoint answered {resp.status}"
                        )
                    if resp.status >= 400:
                        # A client error will not pass by retrying: the key or the request is wrong.
                        text = (await resp.text())[:200]
                        raise EmbedderError(f"http_{resp.status}", f"embedding endpoint refused: {text}")
                    payload = await resp.json()
                data = sorted(payload["data"], key=lambda d: d["index"])
                matrix = np.asarray([d["embedding"] for d in data], dtype=np.float32)
                norms = np.linalg.norm(matrix, axis=1, keepdims=True)
                matrix /= np.where(norms > 0, norms, 1)
                self._dim = int(matrix.shape[1])
                return matrix
            except EmbedderError as exc:
                if not exc.reason.startswith("http_5") and exc.reason != "http_429":
                    raise
                last = exc
            except TimeoutError:
                last = EmbedderError("timeout", "embedding endpoint timed out")
            except aiohttp.ClientError as exc:
                last = EmbedderError("connection", f"embedding endpoint unreachable: {exc}")
            except (KeyError, ValueError, TypeError) as exc:
                raise EmbedderError(
                    "bad_response", f"embedding endpoint sent a malformed answer: {exc}"
                ) from exc
            await asyncio.sleep(0.5 * 2**attempt)
        assert last is not None
        raise last
