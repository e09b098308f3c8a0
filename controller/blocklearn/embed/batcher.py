"""Collects concurrent embedding requests into batches: one call for all Examples waiting.

An embedder that computes in-process (it has `embed_sync`: hashing, a local model) runs in a worker
thread, so the event loop keeps serving watches and writes meanwhile and the model can use another
core; its CPU time is counted apart (`blocklearn_embedding_cpu_seconds_total`), which is how the
benchmark tells the model's share from the controller's.

The backlog gauge is not set here: the reconcilers own it and count every Example still waiting,
also those between retries, which are in no batch (a failed batch empties the queue)."""

from __future__ import annotations

import asyncio
import time

from blocklearn import metrics
from blocklearn.embed import Embedder, Matrix


class EmbedBatcher:
    def __init__(self, embedder: Embedder, max_batch: int = 64, wait: float = 0.05) -> None:
        self._embedder = embedder
        self._max_batch = max_batch
        self._wait = wait
        self._pending: list[tuple[str, asyncio.Future[Matrix]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def embed(self, text: str) -> Matrix:
        future: asyncio.Future[Matrix] = asyncio.get_running_loop().create_future()
        self._pending.append((text, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        self._wake.set()
        return await future

    async def _compute(self, texts: list[str]) -> Matrix:
        compute = getattr(self._embedder, "embed_sync", None)
        if compute is None:
            return await self._embedder.embed(texts)  # over the network: already asynchronous

        def timed() -> Matrix:
            started = time.thread_time()
            try:
                return compute(texts)  # type: ignore[no-any-return]
            finally:
                metrics.embedding_cpu_seconds_total.inc(time.thread_time() - started)

        return await asyncio.to_thread(timed)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._wait)  # let concurrent handlers join the batch
            while self._pending:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
                batch = [(t, f) for t, f in batch if not f.done()]  # a cancelled handler waits no more
                if not batch:
                    continue
                started = time.perf_counter()
                try:
                    vectors = await self._compute([t for t, _ in batch])
                except Exception as exc:  # every waiter gets the failure and retries on its own
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    metrics.embedding_duration_seconds.observe(time.perf_counter() - started)
                    metrics.embedding_batch_size.observe(len(batch))
                    for (_, f), v in zip(batch, vectors, strict=True):
                        if not f.done():
                            f.set_result(v)
