"""Retrieval quality on nl2bash through the production index: each channel alone, the hybrid, and
how the hybrid weight was chosen.

Learns every record of learn.jsonl (the request as the query text, as `blocklearn eval` does), asks
every paraphrase of queries-dev.jsonl, and prints hit@1, hit@5 and MRR for: the TF-IDF baseline of the
data README, BM25, `hashing` (the index's lexical channel alone), `semantic` (its dense channel
alone) and `hybrid` (both fused, what the index serves with the semantic model). `--weights` sweeps
the lexical share of the fused score on the two halves of the dev queries (even and odd lines):
choose on half A, check on half B. `--embed-command` also measures the dense channel when the
executed command is embedded with the request.

    python -m bench.embedder_quality [--data ../shared/data/nl2bash] [--weights 0.1 0.125 0.15]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from blocklearn.devtools.evaluation import (
    BM25Retriever,
    CachedEmbedder,
    IndexRetriever,
    LearnRecord,
    Query,
    Retriever,
    evaluate,
    load_learn,
    load_queries,
)
from blocklearn.devtools.ranking import first_hit_rank, summarise
from blocklearn.index.core import HYBRID_WEIGHT
from blocklearn.settings import Settings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nl2bash"


def figures(retriever: Retriever, learn: list[LearnRecord], queries: list[Query]) -> dict[str, float]:
    """hit@1, hit@5, MRR after learning everything, through the evaluation's production path."""
    step = evaluate(retriever, learn, queries, steps=1, progress=False).steps[-1]
    return {"hit@1": step.hit1, "hit@5": step.hit5, "mrr": step.mrr}


def tfidf_figures(learn: list[LearnRecord], queries: list[Query]) -> dict[str, float] | None:
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError:
        return None
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    docs = vec.fit_transform([r.doc for r in learn])
    qs = vec.transform([q.query for q in queries])
    scores = (qs @ docs.T).toarray()
    top = np.argsort(-scores, axis=1)[:, :10]
    commands = [r.command for r in learn]
    ranks = [first_hit_rank([commands[i] for i in r], q.answers) for r, q in zip(top, queries, strict=True)]
    return summarise(ranks)


def row(name: str, f: dict[str, float], extra: str = "") -> None:
    print(f"{name:<36} {f['hit@1']:6.3f} {f['hit@5']:6.3f} {f['mrr']:6.3f}{extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--weights", type=float, nargs="*", default=[], help="hybrid weights to sweep")
    parser.add_argument("--embed-command", action="store_true", help="also embed request + command")
    parser.add_argument("--no-semantic", action="store_true", help="lexical figures only")
    args = parser.parse_args()
    learn = load_learn(args.data / "learn.jsonl")
    queries = load_queries(args.data / "queries-dev.jsonl")
    halves = {"A": queries[0::2], "B": queries[1::2]}
    print(f"nl2bash: {len(learn)} learned, {len(queries)} dev queries (half A: even lines, B: odd)")
    print(f"{'retriever':<36} {'hit@1':>6} {'hit@5':>6} {'MRR':>6}")
    baseline = tfidf_figures(learn, queries)
    if baseline:
        row("tfidf char_wb 3-5 (sklearn)", baseline)
    row("bm25", figures(BM25Retriever(), learn, queries))
    row("hashing (lexical channel alone)", figures(IndexRetriever("hashing"), learn, queries))
    if args.no_semantic:
        return
    from blocklearn.embed.semantic import SemanticEmbedder

    embedder = CachedEmbedder(SemanticEmbedder.from_settings(Settings()))
    started = time.perf_counter()
    semantic = figures(IndexRetriever("semantic", embedder, text=False), learn, queries)
    row("semantic (dense channel alone)", semantic, f"  ({time.perf_counter() - started:.0f} s)")
    hybrid = figures(IndexRetriever("hybrid", embedder), learn, queries)
    row(f"hybrid (weight {HYBRID_WEIGHT})", hybrid, f"  (+{hybrid['hit@5'] - semantic['hit@5']:.3f} hit@5)")
    for weight in args.weights:
        parts = []
        for half, asked in halves.items():
            alone = figures(IndexRetriever("s", embedder, text=False), learn, asked)["hit@5"]
            fused = figures(IndexRetriever("h", embedder, hybrid_weight=weight), learn, asked)["hit@5"]
            parts.append(f"{half}: {fused:.3f} ({fused - alone:+.3f})")
        print(f"  weight {weight:<6} hit@5 on half " + ", half ".join(parts), flush=True)
    if args.embed_command:
        with_command = [LearnRecord(r.id, f"{r.doc}\n\n{r.command}", r.command) for r in learn]
        row(
            "semantic, request + command embedded",
            figures(IndexRetriever("s", embedder, text=False), with_command, queries),
        )


if __name__ == "__main__":
    main()
