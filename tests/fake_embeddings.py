"""An OpenAI-compatible /v1/embeddings endpoint served by a test, which can fail in two real ways:
answer 503 (an overloaded or restarting provider) or stop listening (connections refused)."""

from __future__ import annotations

import time

from aiohttp import web

from blocklearn.embed.hashing import HashingEmbedder


class FakeEmbeddings:
    def __init__(self, port: int, dim: int = 64) -> None:
        self.port, self.embedder = port, HashingEmbedder(dim)
        self.runner: web.AppRunner | None = None
        self.failing_with: int | None = None  # an HTTP status to answer instead of embeddings
        self.failures_left: int | None = None  # fail only this many requests, then answer again
        self.retry_after: str | None = None  # the Retry-After header sent with a failure
        self.requests = 0
        self.embedded = 0
        self.bodies: list[dict] = []
        self.peers: set[object] = set()  # the client's (address, port): one per connection it opened
        self.log: list[tuple[float, str, list[str]]] = []  # (monotonic time, model, texts) answered

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if self.failing_with is not None and self.failures_left != 0:
            if self.failures_left is not None:
                self.failures_left -= 1
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            body = {"error": {"message": f"failing with {self.failing_with}"}}
            return web.json_response(body, status=self.failing_with, headers=headers)
        body = await request.json()
        self.bodies.append(body)
        vectors = self.embedder.embed_sync(list(body["input"]))
        if "dimensions" in body:  # as text-embedding-3 models shorten their vectors
            vectors = vectors[:, : body["dimensions"]]
        self.embedded += len(vectors)
        self.log.append((time.monotonic(), str(body["model"]), list(body["input"])))
        data = [{"index": i, "embedding": v.tolist(), "object": "embedding"} for i, v in enumerate(vectors)]
        return web.json_response({"data": data, "model": body["model"], "object": "list"})

    async def up(self) -> None:
        self.failing_with = None
        if self.runner is not None:
            return
        app = web.Application()
        app.router.add_post("/v1/embeddings", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def env(self, model: str = "fake-embedding") -> dict[str, str]:
        """The controller's settings for this endpoint."""
        return {
            "BLOCKLEARN_EMBEDDER": "openai",
            "BLOCKLEARN_OPENAI_BASE_URL": f"http://127.0.0.1:{self.port}/v1",
            "BLOCKLEARN_OPENAI_MODEL": model,
            "OPENAI_API_KEY": "not-a-real-key",
        }
