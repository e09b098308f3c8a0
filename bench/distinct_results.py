"""Distinct results against raw results, on a learn set where corrections repeat.

Learns tldr-pages examples (`../shared/data/tldr/blocks.jsonl`: the page's summary and the example's
description as markup cells, the command as the executed cell) through the production path (query
text -> the index's lexical channel, as the `hashing` setting runs it), then asks each example's
description alone, lower-cased and without tldr's [x] markers, as a person would type it. A query
hits at 3 when one of the 3 results has its command (whitespace-normalised). Raw results are the
index's top 3; distinct results are `blocklearn.search.distinct` over the same ranking, over-fetched
as the search API does.

Two learn sets: tldr as it is (commands that appear on several pages repeat already), and tldr plus
duplicates made here: on a share of the pages, one example (the popular correction) is learned again
1 to --max-copies times, with the request reworded and the command's whitespace changed, as when
several people make the same correction.

    python -m bench.distinct_results [--pages 1000] [--dup-pages 0.3] [--max-copies 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from blocklearn.devtools.assistant import as_request
from blocklearn.devtools.ranking import first_hit_rank
from blocklearn.embed.hashing import HashingEmbedder, dense_dim
from blocklearn.embed.text import query_text
from blocklearn.index.core import Entry, ExampleIndex
from blocklearn.resources.models import Cell
from blocklearn.search.distinct import candidates, distinct

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr" / "blocks.jsonl"
K = 3
REWORDINGS = ["how do I {}", "please {}", "{} (again)", "can you {}", "i need to {}"]


@dataclass(frozen=True)
class Record:
    id: str
    page: str  # tldr's page; nl2bash records are a page each
    context: str
    doc: str
    command: str


@dataclass(frozen=True)
class Query:
    text: str
    answers: list[str]


def load(path: Path, pages: int, seed: int) -> list[Record]:
    by_page: dict[str, list[Record]] = defaultdict(list)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        page = f"{r['platform']}/{r['page']}"
        by_page[page].append(Record(r["id"], page, r["context"], r["doc"], r["command"]))
    chosen = sorted(by_page) if pages <= 0 else random.Random(seed).sample(sorted(by_page), pages)
    return [r for page in chosen for r in by_page[page]]


def load_nl2bash(directory: Path) -> tuple[list[Record], list[Query]]:
    learn = [json.loads(line) for line in (directory / "learn.jsonl").read_text().splitlines()]
    dev = [json.loads(line) for line in (directory / "queries-dev.jsonl").read_text().splitlines()]
    records = [Record(r["id"], r["id"], "", r["doc"], r["command"]) for r in learn]
    return records, [Query(q["query"], q["answers"]) for q in dev]


def duplicates(records: list[Record], share: float, max_copies: int, seed: int) -> list[Record]:
    """Repeat one example on `share` of the pages 1..max_copies times, reworded."""
    rng = random.Random(seed + 1)
    first: dict[str, Record] = {}
    for r in records:
        first.setdefault(r.page, r)
    pages = sorted(first)
    out = []
    for page in rng.sample(pages, round(share * len(pages))):
        r = first[page]
        for i in range(rng.randint(1, max_copies)):
            doc = rng.choice(REWORDINGS).format(as_request(r.doc))
            command = "  " + r.command.replace(" ", "  ", 1) + "\n"  # same answer, other whitespace
            out.append(Record(f"{r.id}-dup{i}", page, r.context, doc, command))
    return out


def embed_text(r: Record) -> str:
    cells = [Cell(kind="markup", contents=c) for c in (r.context, r.doc) if c]
    return query_text(cells)[0]


def build(learn: list[Record], embedder: HashingEmbedder) -> ExampleIndex:
    """The index as the `hashing` setting runs it: the lexical channel alone, read from the text."""
    index = ExampleIndex(dense_dim(embedder), embedder.model, capacity=len(learn))
    for r in learn:
        answer = json.dumps([{"kind": "code", "contents": r.command}])
        index.upsert(r.id, Entry("bench", r.id, answer_json=answer), embed_text(r))
    return index


@dataclass
class Figures:
    queries: int = 0
    raw_hits: int = 0
    distinct_hits: int = 0
    raised: int = 0
    lowered: int = 0
    raw_answers: int = 0  # distinct answers among the raw top k, summed

    def row(self, name: str) -> str:
        raw, dis = self.raw_hits / self.queries, self.distinct_hits / self.queries
        return (
            f"| {name} | {self.queries:,} | {raw:.3f} | {dis:.3f} | {dis / raw:.3f}x | {self.raised}"
            f" | {self.lowered} | {self.raw_answers / self.queries:.2f} |"
        )


def measure(index: ExampleIndex, embedder: HashingEmbedder, queries: list[Query]) -> dict[str, Figures]:
    """Figures over all queries, and over those whose raw top k repeats an answer (the only ones
    distinct results can change)."""
    out = {"all": Figures(), "repeats": Figures()}
    for q in queries:
        hits = index.search(q.text, candidates(K))
        raw = [str(h.entry.answer[0]["contents"]) for h in hits[:K]]
        dis = [str(g.hit.entry.answer[0]["contents"]) for g in distinct(hits, K)]
        raw_hit = first_hit_rank(raw, q.answers) is not None
        dis_hit = first_hit_rank(dis, q.answers) is not None
        answers = len({" ".join(a.split()) for a in raw})
        for name in ("all", "repeats") if answers < len(raw) else ("all",):
            f = out[name]
            f.queries += 1
            f.raw_hits += raw_hit
            f.distinct_hits += dis_hit
            f.raised += dis_hit and not raw_hit
            f.lowered += raw_hit and not dis_hit
            f.raw_answers += answers
    return out


def table(name: str, records: list[Record], queries: list[Query], extra: list[Record]) -> None:
    # The hashing setting: the index's lexical channel alone (its dimension only names the model).
    embedder = HashingEmbedder()
    print(
        f"| {name} | queries | raw hit@3 | distinct hit@3 | ratio | raised | lowered | answers in raw top 3 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, learn in (
        (f"as is ({len(records):,})", records),
        (f"+ {len(extra):,} duplicates", records + extra),
    ):
        figures = measure(build(learn, embedder), embedder, queries)
        print(figures["all"].row(label))
        if figures["repeats"].queries:
            print(figures["repeats"].row("... whose raw top 3 repeats an answer"))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--pages", type=int, default=1000, help="pages sampled (0: all 7,404)")
    parser.add_argument("--dup-pages", type=float, default=0.3, help="share of pages given duplicates")
    parser.add_argument("--max-copies", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--nl2bash", type=Path, default=DEFAULT_DATA.parents[1] / "nl2bash")
    parser.add_argument(
        "--nl2bash-dups", type=float, default=0.1, help="share of nl2bash records given duplicates"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    records = load(args.data, args.pages, args.seed)
    extra = duplicates(records, args.dup_pages, args.max_copies, args.seed)
    print(
        f"Distinct results, the lexical channel (hashing), k={K}, over-fetch {candidates(K)},"
        f" seed {args.seed};"
        f" duplicates: one example on {args.dup_pages:.0%} of the pages (tldr) or records (nl2bash),"
        f" 1-{args.max_copies} copies each, reworded"
    )
    print()
    queries = [Query(as_request(r.doc), [r.command]) for r in records]
    table(f"tldr-pages, {args.pages or 'all'} pages", records, queries, extra)
    if args.nl2bash.exists():
        learn, dev = load_nl2bash(args.nl2bash)
        table(
            "nl2bash, dev paraphrases",
            learn,
            dev,
            duplicates(learn, args.nl2bash_dups, args.max_copies, args.seed),
        )
    print(f"({time.perf_counter() - started:.0f} s; hit@1 is the same either way: the best result is kept)")


if __name__ == "__main__":
    main()
