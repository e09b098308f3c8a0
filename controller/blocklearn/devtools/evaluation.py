"""`blocklearn eval`: replay a learn file as Blocks, in steps, and measure retrieval after each step.

Each learn record `{"id", "doc", "command"}` becomes a Block whose doc is the request (a markup cell),
whose suggestion was empty and whose executed cell is the command: a correction. It goes through the
production path: the learning rule, the embedded text, the embedder, the index (its dense channel, its
lexical channel, or both fused, as a running index ranks). After each step every
query `{"id", "query", "answers"}` is asked; hit@1, hit@5 and MRR of the expected command are
recorded, with a token similarity of the top answer so near misses are visible.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from blocklearn.devtools.ranking import first_hit_rank, summarise
from blocklearn.embed import Embedder, Matrix
from blocklearn.embed.text import query_text
from blocklearn.index.core import HYBRID_WEIGHT, Entry, ExampleIndex
from blocklearn.learn.rule import decide
from blocklearn.resources.models import BlockRef, BlockSpec, Cell

K = 10


@dataclass(frozen=True)
class LearnRecord:
    id: str
    doc: str
    command: str


@dataclass(frozen=True)
class Query:
    id: str
    query: str
    answers: list[str]


# The NL2Bash data `blocklearn eval` reads unless told otherwise (package data; see its README.md).
NL2BASH = Path(__file__).resolve().parent / "data" / "nl2bash"
DEFAULT_LEARN = NL2BASH / "learn.jsonl"
DEFAULT_QUERIES = NL2BASH / "queries-dev.jsonl"


def load_jsonl(path: Path, fields: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """JSON objects, one a line, each with `fields`; a ValueError names the file and line."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or any(f not in row for f in fields):
            raise ValueError(f"{path}:{number}: not an object with {', '.join(fields)}")
        rows.append(row)
    return rows


def load_learn(path: Path, limit: int | None = None) -> list[LearnRecord]:
    rows = load_jsonl(path, ("id", "doc", "command"))[:limit]
    return [LearnRecord(str(r["id"]), str(r["doc"]), str(r["command"])) for r in rows]


def load_queries(path: Path, limit: int | None = None) -> list[Query]:
    rows = load_jsonl(path, ("id", "query", "answers"))[:limit]
    return [Query(str(r["id"]), str(r["query"]), [str(a) for a in r["answers"]]) for r in rows]


def as_block(record: LearnRecord) -> BlockSpec:
    """A correction: the assistant suggested nothing useful, the person ran the command."""
    return BlockSpec.model_validate(
        {
            "doc": {"cells": [{"kind": "markup", "contents": record.doc}]},
            "generatedCell": {"kind": "code", "language": "bash", "contents": ""},
            "executedCell": {"kind": "code", "language": "bash", "contents": record.command},
            "exitCode": 0,
            "evalMode": False,
        }
    )


def request_text(request: str) -> str:
    return query_text([Cell(kind="markup", contents=request)])[0]


_TOKENS = re.compile(r"[A-Za-z0-9_./-]+")


def token_similarity(a: str, b: str) -> float:
    """Jaccard similarity of command tokens: 1 for the same command, partial credit for near misses."""
    ta, tb = set(_TOKENS.findall(a)), set(_TOKENS.findall(b))
    return len(ta & tb) / len(ta | tb) if ta | tb else 1.0


class Retriever(Protocol):
    name: str

    def learn(self, texts: list[str], commands: list[str]) -> None: ...

    def search(self, text: str, k: int) -> list[str]: ...


class IndexRetriever:
    """The production path: the example index, fed as the watcher feeds it.

    With an embedder, each example's vector goes into the dense channel; with `text`, its query text
    goes into the lexical channel. Both: the hybrid ranking users get with a dense model; the lexical
    channel alone: the `hashing` setting; the dense channel alone: the model without fusion.
    """

    def __init__(
        self,
        name: str,
        embedder: Embedder | None = None,
        text: bool = True,
        hybrid_weight: float = HYBRID_WEIGHT,
    ) -> None:
        self.name = name
        self.embedder = embedder
        self.text = text
        model = embedder.model if embedder else "lexical"
        self.index = ExampleIndex(embedder.dim if embedder else 0, model, hybrid_weight=hybrid_weight)
        self._queries: dict[str, Matrix] = {}

    def _embed(self, texts: list[str]) -> Matrix:
        assert self.embedder is not None
        return asyncio.run(self.embedder.embed(texts))

    def learn(self, texts: list[str], commands: list[str]) -> None:
        vectors = self._embed(texts) if self.embedder else [None] * len(texts)
        for text, command, vector in zip(texts, commands, vectors, strict=True):
            id_ = f"eval/{len(self.index)}"
            entry = Entry("eval", id_, answer_json=json.dumps([{"kind": "code", "contents": command}]))
            self.index.upsert(id_, entry, text if self.text else "", vector)

    def prepare(self, texts: list[str]) -> None:
        """Embed all queries once: the embedder is deterministic, only the index changes by step."""
        if self.embedder:
            self._queries.update(zip(texts, self._embed(texts), strict=True))

    def search(self, text: str, k: int) -> list[str]:
        vector = None
        if self.embedder:
            vector = self._queries.get(text)
            if vector is None:
                vector = self._embed([text])[0]
        hits = self.index.search(text if self.text else "", k, vector=vector)
        return [str(h.entry.answer[0]["contents"]) for h in hits]


class CachedEmbedder:
    """An embedder that remembers: the semantic and hybrid curves embed the same texts once."""

    def __init__(self, embedder: Embedder) -> None:
        self.inner = embedder
        self.model, self.dim = embedder.model, embedder.dim
        self._memo: dict[str, Matrix] = {}

    async def embed(self, texts: list[str]) -> Matrix:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            self._memo.update(zip(missing, await self.inner.embed(missing), strict=True))
        return np.stack([self._memo[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


class BM25Retriever:
    """Okapi BM25 over word tokens of the same text: the lexical baseline."""

    name = "bm25"
    _WORD = re.compile(r"[a-z0-9_]+")

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs: list[Counter[str]] = []
        self.commands: list[str] = []
        self.df: Counter[str] = Counter()
        self.postings: dict[str, list[int]] = {}

    def learn(self, texts: list[str], commands: list[str]) -> None:
        for text, command in zip(texts, commands, strict=True):
            tf = Counter(self._WORD.findall(text.lower()))
            doc_id = len(self.docs)
            self.docs.append(tf)
            self.commands.append(command)
            for term in tf:
                self.df[term] += 1
                self.postings.setdefault(term, []).append(doc_id)

    def search(self, text: str, k: int) -> list[str]:
        n = len(self.docs)
        if not n:
            return []
        avg = sum(sum(d.values()) for d in self.docs) / n
        scores: dict[int, float] = {}
        for term in set(self._WORD.findall(text.lower())):
            if term not in self.df:
                continue
            idf = math.log(1 + (n - self.df[term] + 0.5) / (self.df[term] + 0.5))
            for doc_id in self.postings[term]:
                tf = self.docs[doc_id][term]
                length = sum(self.docs[doc_id].values())
                scores[doc_id] = scores.get(doc_id, 0.0) + idf * tf * (self.k1 + 1) / (
                    tf + self.k1 * (1 - self.b + self.b * length / avg)
                )
        top = sorted(scores, key=lambda d: -scores[d])[:k]
        return [self.commands[d] for d in top]


@dataclass
class Step:
    examples: int
    hit1: float
    hit5: float
    mrr: float
    similarity: float
    seconds: float


@dataclass
class Curve:
    retriever: str
    steps: list[Step] = field(default_factory=list)


def evaluate(
    retriever: Retriever,
    learn: Sequence[LearnRecord],
    queries: Sequence[Query],
    steps: int,
    progress: bool = True,
) -> Curve:
    """Learn in `steps` equal chunks; after each, ask every query."""
    taught = [(r, d) for r in learn if (d := decide(as_block(r), BlockRef(name=r.id))).teaches]
    texts = [request_text(r.doc) for r, _ in taught]
    commands = [r.command for r, _ in taught]
    query_texts = [request_text(q.query) for q in queries]
    if isinstance(retriever, IndexRetriever):
        retriever.prepare(query_texts)
    curve = Curve(retriever.name)
    bounds = [round(len(taught) * (i + 1) / steps) for i in range(steps)]
    start = 0
    for i, end in enumerate(bounds, start=1):
        began = time.perf_counter()
        retriever.learn(texts[start:end], commands[start:end])
        start = end
        ranks, sims = [], []
        for q, text in zip(queries, query_texts, strict=True):
            ranked = retriever.search(text, K)
            ranks.append(first_hit_rank(ranked, q.answers))
            sims.append(
                max((token_similarity(ranked[0], a) for a in q.answers), default=0.0) if ranked else 0.0
            )
        m = summarise(ranks)
        step = Step(end, m["hit@1"], m["hit@5"], m["mrr"], float(np.mean(sims)), time.perf_counter() - began)
        curve.steps.append(step)
        if progress:
            bar = "#" * int(20 * i / steps)
            print(
                f"\r{retriever.name:<24} [{bar:<20}] {i}/{steps} examples={end} hit@1={step.hit1:.3f}"
                f" hit@5={step.hit5:.3f} mrr={step.mrr:.3f}",
                end="\n" if i == steps else "",
                file=sys.stderr,
                flush=True,
            )
    return curve


def write_report(curves: list[Curve], out: Path, meta: dict[str, Any]) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md", "png": out / "learning_curve.png"}
    paths["json"].write_text(
        json.dumps(
            {
                **meta,
                "curves": [{"retriever": c.retriever, "steps": [asdict(s) for s in c.steps]} for c in curves],
            },
            indent=2,
        )
    )
    lines = [
        "# Blocklearn evaluation",
        "",
        f"Learned from `{meta['learn']}` ({meta['learned']} examples), asked `{meta['queries']}`"
        f" ({meta['asked']} queries), in {meta['steps']} steps.",
        "",
        "| retriever | hit@1 | hit@5 | MRR | top-1 token similarity |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in curves:
        s = c.steps[-1]
        lines.append(f"| {c.retriever} | {s.hit1:.3f} | {s.hit5:.3f} | {s.mrr:.3f} | {s.similarity:.3f} |")
    lines += ["", "![learning curve](learning_curve.png)", ""]
    paths["markdown"].write_text("\n".join(lines))
    plot(curves, paths["png"])
    return paths


def plot(curves: list[Curve], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for c in curves:
        xs = [s.examples for s in c.steps]
        (line,) = ax.plot(xs, [s.hit5 for s in c.steps], marker="o", label=f"{c.retriever} hit@5")
        ax.plot(
            xs,
            [s.hit1 for s in c.steps],
            linestyle="--",
            color=line.get_color(),
            label=f"{c.retriever} hit@1",
        )
    ax.set_xlabel("examples learned")
    ax.set_ylabel("share of queries answered")
    ax.set_title("Blocklearn: retrieval quality as corrections accumulate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
