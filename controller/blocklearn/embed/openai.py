"""Any OpenAI-compatible `/v1/embeddings` endpoint: one session, timeouts, retries that listen.

One aiohttp session (one connection pool) serves every request of the process. A 429 or a 5xx, a
timeout or a refused connection is retried with backoff, waiting what the endpoint's `Retry-After`
asks; any other 4xx is permanent (a wrong key, an unknown model, a refused input): retrying the same
request cannot help, and its reason goes on the Example's `Embedded` condition.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import numpy as np
import tenacity

from blocklearn.embed import EmbedderError, Matrix
from blocklearn.runtime.retry import after_hint, exponential
from blocklearn.settings import Settings

RETRIES = 3
# A Retry-After longer than this is cut: the Example's own retry (with its condition) takes over.
MAX_RETRY_AFTER = 20.0


class OpenAIEmbedder:
    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        timeout: float,
        dim: int | None = None,
        dimensions: int | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._url = base_url.rstrip("/") + "/embeddings"
        self._model = model
        self._key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._dimensions = dimensions
        self._dim = dim if dim is not None else dimensions
        self._session: aiohttp.ClientSession | None = None
        self._sleep = sleep  # between attempts; a test records the waits instead of timing them

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        if settings.openai_api_key_file:
            key = Path(settings.openai_api_key_file).read_text().strip()
        else:
            key = os.environ.get(settings.openai_api_key_env, "")
        return cls(
            settings.openai_base_url,
            settings.openai_model,
            key,
            settings.embed_timeout_seconds,
            dimensions=settings.openai_dimensions,
        )

    @property
    def model(self) -> str:
        # The requested dimension changes the vectors: it is part of the name that detects staleness.
        return f"openai:{self._model}" + (f"-d{self._dimensions}" if self._dimensions else "")

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise RuntimeError("the dimension is known after the first embedding; call probe() first")
        return self._dim

    async def probe(self) -> int:
        """Learn the dimension from the endpoint itself."""
        vectors = await self.embed(["dimension probe"])
        return int(vectors.shape[1])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the event loop that uses it (aiohttp binds a session to its loop).
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=headers)
        return self._session

    async def embed(self, texts: list[str]) -> Matrix:
        body: dict[str, object] = {"model": self._model, "input": texts}
        if self._dimensions:
            body["dimensions"] = self._dimensions
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, EmbedderError) and not e.permanent),
            stop=tenacity.stop_after_attempt(RETRIES),
            wait=after_hint(exponential(0.5, 8.0), cap=MAX_RETRY_AFTER),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._post(body)
        raise AssertionError("unreachable: tenacity returns or raises")

    async def _post(self, body: dict[str, object]) -> Matrix:
        try:
            async with self._client().post(self._url, json=body) as resp:
                if resp.status == 429 or resp.status >= 500:
                    raise EmbedderError(
                        f"http_{resp.status}",
                        f"embedding endpoint answered {resp.status}",
                        retry_after=_retry_after(resp.headers.get("Retry-After")),
                    )
                if resp.status >= 400:
                    text = (await resp.text())[:300]
                    if self._key:
                        text = text.replace(self._key, "<api key>")
                    raise EmbedderError(
                        f"http_{resp.status}",
                        f"embedding endpoint refused the request ({resp.status}): {text}",
                        permanent=True,
                    )
                payload = await resp.json()
        except TimeoutError as exc:
            raise EmbedderError("timeout", "embedding endpoint timed out") from exc
        except aiohttp.ClientError as exc:
            raise EmbedderError("connection", f"embedding endpoint unreachable: {exc}") from exc
        try:
            data = sorted(payload["data"], key=lambda d: d["index"])
            matrix = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (KeyError, ValueError, TypeError) as exc:
            raise EmbedderError("bad_response", f"embedding endpoint sent a malformed answer: {exc}") from exc
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.where(norms > 0, norms, 1)
        self._dim = int(matrix.shape[1])
        return matrix


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())
