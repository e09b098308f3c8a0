"""Retrieval quality of the embedders on nl2bash, beside the TF-IDF baselines of the data README.

Learns every record of learn.jsonl through the production path (query text -> embedder -> index),
asks every paraphrase of queries-dev.jsonl, and prints hit@1, hit@5 and MRR.

    python -m bench.embedder_quality [--data ../shared/data/nl2bash] [--dims 1024 2048 4096]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np

from blocklearn.embed.hashing import HashingEmbedder
from blocklearn.embed.text import query_text
from blocklearn.index.core import Entry, ExampleIndex
from blocklearn.models import Cell
from blocklearn.ranking import first_hit_rank, summarise

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nl2bash"


def load(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def as_query(request: str) -> str:
    return query_text([Cell(kind="markup", contents=request)])[0]


def hashing_figures(dim: int, learn: list[dict], queries: list[dict]) -> dict[str, float]:
    embedder = HashingEmbedder(dim)
    started = time.perf_counter()
    vectors = asyncio.run(embedder.embed([as_query(str(r["doc"])) for r in learn]))
    embed_seconds = time.perf_counter() - started
    index = ExampleIndex(dim, embedder.model, query_idf=embedder.query_idf)
    for record, vector in zip(learn, vectors, strict=True):
        index.upsert(
            str(record["id"]),
            vector,
            Entry("bench", str(record["id"]), {"cmd": record["command"]}),
            embedder.model,
        )
    qvecs = asyncio.run(embedder.embed([as_query(str(q["query"])) for q in queries]))
    ranks = []
    for q, v in zip(queries, qvecs, strict=True):
        hits = index.search(v, k=10)
        ranks.append(first_hit_rank([str(h.entry.payload["cmd"]) for h in hits], q["answers"]))
    return {**summarise(ranks), "embed_per_text_ms": 1000 * embed_seconds / len(learn)}


def tfidf_figures(learn: list[dict], queries: list[dict]) -> dict[str, float] | None:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        return None
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    docs = vec.fit_transform([str(r["doc"]) for r in learn])
    qs = vec.transform([str(q["query"]) for q in queries])
    scores = (qs @ docs.T).toarray()
    top = np.argsort(-scores, axis=1)[:, :10]
    ranks = [
        first_hit_rank([str(learn[i]["command"]) for i in row], q["answers"])
        for row, q in zip(top, queries, strict=True)
    ]
    return summarise(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--dims", type=int, nargs="+", default=[1024, 2048, 4096])
    args = parser.parse_args()
    learn, queries = load(args.data / "learn.jsonl"), load(args.data / "queries-dev.jsonl")
    print(f"nl2bash: {len(learn)} learned, {len(queries)} dev queries")
    print(f"{'embedder':<28} {'hit@1':>6} {'hit@5':>6} {'MRR':>6}")
    baseline = tfidf_figures(learn, queries)
    if baseline:
        name = "tfidf char_wb 3-5 (sklearn)"
        print(f"{name:<28} {baseline['hit@1']:6.3f} {baseline['hit@5']:6.3f} {baseline['mrr']:6.3f}")
    else:
        print("tfidf baseline skipped: pip install '.[bench]' for scikit-learn")
    for dim in args.dims:
        f = hashing_figures(dim, learn, queries)
        ratio = f" ({f['hit@5'] / baseline['hit@5']:.2f}x tfidf hit@5)" if baseline else ""
        print(
            f"{'hashing d=' + str(dim):<28} {f['hit@1']:6.3f} {f['hit@5']:6.3f} {f['mrr']:6.3f}"
            f"  {f['embed_per_text_ms']:.2f} ms/text{ratio}"
        )


if __name__ == "__main__":
    main()
