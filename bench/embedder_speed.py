"""Speed and quality of the semantic embedder (all-MiniLM-L6-v2, int8, onnxruntime) on one thread.

Prints single-text latency p50/p99 (dev queries, one at a time, as a search asks), texts per second
for calls of 32 texts (as the controller's batcher sends them), the same through one padded batch of
32 sorted by length (the alternative the embedder does not use), and hit@1/hit@5 on the public dev
half with every record of learn.jsonl learned, through `blocklearn.devtools.evaluation` (the production path),
as float32 and rounded through float16 (the default storage of Examples; queries rounded too).

    python -m bench.embedder_speed [--data ../shared/data/nl2bash] [--threads 1] [--skip-quality]

Targets (issue 11): dev hit@5 >= 0.61, single-text p50 <= 6 ms on one thread.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from blocklearn.devtools import evaluation as ev
from blocklearn.embed import semantic
from blocklearn.embed.semantic import SemanticEmbedder
from blocklearn.settings import Settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nl2bash"
TARGET_HIT5 = 0.61
TARGET_P50_MS = 6.0
BATCH = 32


def latencies_ms(embedder: SemanticEmbedder, texts: list[str]) -> np.ndarray:
    out = []
    for text in texts:
        started = time.perf_counter()
        embedder.embed_sync([text])
        out.append(1000 * (time.perf_counter() - started))
    return np.asarray(out)


def texts_per_second(embedder: SemanticEmbedder, texts: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), BATCH):
        embedder.embed_sync(texts[i : i + BATCH])
    return len(texts) / (time.perf_counter() - started)


def padded_batches_per_second(settings: Settings, texts: list[str]) -> float:
    """The road not taken: batches of 32, sorted by length, padded to the longest in the batch."""
    cache = Path(settings.model_cache_dir) if settings.model_cache_dir else None
    model, tokenizer_path = semantic.load(cache)
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(semantic.MAX_TOKENS)
    session = semantic.make_session(model, settings.semantic_threads)
    started = time.perf_counter()
    ids = sorted((e.ids for e in tokenizer.encode_batch(texts)), key=len)
    for i in range(0, len(ids), BATCH):
        batch = ids[i : i + BATCH]
        width = max(map(len, batch))
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
        session.run(
            ["embedding"], {"input_ids": input_ids, "attention_mask": (input_ids > 0).astype(np.int64)}
        )
    return len(texts) / (time.perf_counter() - started)


class StoredAsFloat16:
    """The embedder with every vector rounded through float16, as Examples store it by default."""

    def __init__(self, inner: SemanticEmbedder) -> None:
        self.inner, self.model, self.dim = inner, inner.model, inner.dim

    async def embed(self, texts: list[str]) -> np.ndarray:
        return (await self.inner.embed(texts)).astype(np.float16).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default: 1)")
    parser.add_argument("--texts", type=int, default=2048, help="learn texts for the throughput runs")
    parser.add_argument("--skip-quality", action="store_true", help="speed only (quality takes ~1 min)")
    args = parser.parse_args()

    learn = ev.load_learn(args.data / "learn.jsonl")
    queries = ev.load_queries(args.data / "queries-dev.jsonl")
    started = time.perf_counter()
    settings = Settings(semantic_threads=args.threads)
    embedder = SemanticEmbedder.from_settings(settings)
    load_s = time.perf_counter() - started
    print(
        f"model: {embedder.model} dim={embedder.dim} threads={args.threads}"
        f" onnxruntime={importlib.metadata.version('onnxruntime')}"
    )
    print(f"start (cached model): {load_s:.2f} s")

    query_texts = [ev.request_text(q.query) for q in queries]
    learn_texts = [ev.request_text(r.doc) for r in learn[: args.texts]]
    embedder.embed_sync(query_texts[:50])  # warm-up: first runs allocate
    lat = latencies_ms(embedder, query_texts)
    p50, p99 = float(np.percentile(lat, 50)), float(np.percentile(lat, 99))
    print(
        f"single text ({len(lat)} dev queries): p50 {p50:.2f} ms  p99 {p99:.2f} ms"
        f"  ({p50 / TARGET_P50_MS:.2f}x the {TARGET_P50_MS:g} ms target)"
    )
    one = texts_per_second(embedder, learn_texts)
    padded = padded_batches_per_second(settings, learn_texts)
    print(f"throughput, calls of {BATCH} texts ({len(learn_texts)} learn texts): {one:.0f} texts/s")
    print(
        f"throughput, padded batches of {BATCH} sorted by length: {padded:.0f} texts/s"
        f"  (one by one / padded = {one / padded:.2f})"
    )

    if not args.skip_quality:
        for name, retriever in (
            ("float32", ev.IndexRetriever("float32", embedder, text=False)),
            ("float16 storage", ev.IndexRetriever("float16", StoredAsFloat16(embedder), text=False)),
        ):
            last = ev.evaluate(retriever, learn, queries, steps=1, progress=False).steps[-1]
            print(
                f"quality, {name} (dev half, {last.examples} learned, {len(queries)} queries):"
                f" hit@1 {last.hit1:.3f}  hit@5 {last.hit5:.3f}  MRR {last.mrr:.3f}"
                f"  (hit@5 target {TARGET_HIT5}: {'met' if last.hit5 >= TARGET_HIT5 else 'MISSED'})"
            )


if __name__ == "__main__":
    main()
