"""Index benchmark at the default configuration: 384-d vectors (the semantic model) plus the lexical
channel, as users get it. Search latency of the dense part, the lexical part and the whole fused
search; per-row writes against a full reload; memory; FAISS's flat index beside it.

Each contender runs in its own process (OpenMP and OpenBLAS runtimes mixed in one process gave
latency spikes), on the same seeded data: N unit vectors of d=384 and 200 perturbed queries; the
texts are the nl2bash requests cycled, each with a varied name or number in it (so the vocabulary
grows with N as real corrections' does), and the queries are the dev paraphrases.

    python -m bench.index_bench [--sizes 10000 100000 1000000] [--no-faiss]

numpy's OpenBLAS is set to one thread once at start (a threadpool_limits call per search costs
0.5 ms); FAISS's IndexFlatIP runs with one OpenMP thread (a single query split across threads is
slower on 2 cores since faiss 1.14.2).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
QUERIES = 200
K = 10
NL2BASH = Path(__file__).resolve().parents[2] / "shared" / "data" / "nl2bash"
VARIATIONS = [
    "in {dir}",
    "for pod web-{n}",
    "on host node-{n}",
    "named report_{n}.txt",
    "under /var/log/app{n}",
    "older than {n} days",
    "",
]


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    matrix = rng.standard_normal((n, DIM), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    picks = rng.integers(0, n, QUERIES)
    queries = matrix[picks] + 0.3 * rng.standard_normal((QUERIES, DIM), dtype=np.float32) / np.sqrt(DIM)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return matrix, queries.astype(np.float32)


def texts(n: int) -> tuple[list[str], list[str]]:
    """n example texts and QUERIES query texts, realistic and seeded."""
    learn = [json.loads(line)["doc"] for line in (NL2BASH / "learn.jsonl").read_text().splitlines()]
    asked = [json.loads(line)["query"] for line in (NL2BASH / "queries-dev.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(7)
    dirs = ["/srv/data", "/home/ops", "/etc/nginx", "/tmp/build", "~/projects"]
    out = []
    for i in range(n):
        variation = VARIATIONS[i % len(VARIATIONS)].format(dir=dirs[i % len(dirs)], n=rng.integers(0, n))
        out.append(f"{learn[i % len(learn)]} {variation}".strip())
    return out, asked[:QUERIES]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def worker_numpy(n: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from blocklearn.index.core import Entry, ExampleIndex

    matrix, queries = data(n)
    docs, asked = texts(n)
    base_rss = rss_mb()
    index = ExampleIndex(DIM, "bench")
    entries = [Entry("bench", f"e{i}") for i in range(n)]
    started = time.perf_counter()
    for i in range(n):
        index.upsert(f"e{i}", entries[i], docs[i], matrix[i])
    build_s = time.perf_counter() - started
    index_rss = rss_mb() - base_rss

    # per-row writes: update 1000 existing rows, delete 1000 and insert them back
    ops = 1000
    started = time.perf_counter()
    for i in range(ops):
        index.upsert(f"e{i}", entries[i], docs[i], matrix[i])
    update_us = (time.perf_counter() - started) / ops * 1e6
    started = time.perf_counter()
    for i in range(ops):
        index.delete(f"e{i}")
    delete_us = (time.perf_counter() - started) / ops * 1e6
    for i in range(ops):
        index.upsert(f"e{i}", entries[i], docs[i], matrix[i])

    # what the seed's InMemoryDB does on every change: rebuild the matrix and the map from all rows
    rows = [matrix[i] for i in range(n)]
    started = time.perf_counter()
    rebuilt = np.vstack(rows)
    id_map = {f"e{i}": i for i in range(n)}
    reload_ms = (time.perf_counter() - started) * 1000
    del rebuilt, id_map, rows

    # The same queries three ways, interleaved so that load on the machine hits all three alike.
    dense, lexical, whole, results = [], [], [], []
    for q, text in zip(queries, asked, strict=True):
        t = time.perf_counter()
        hits = index.search("", K, vector=q)  # the dense channel alone
        dense.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(text, K)  # the lexical channel alone
        lexical.append(time.perf_counter() - t)
        t = time.perf_counter()
        index.search(text, K, vector=q)  # what a user's search does: both, fused
        whole.append(time.perf_counter() - t)
        results.append([int(h.entry.name[1:]) for h in hits])

    # read-bandwidth floor: the time to stream the stored matrix once
    view = index._matrix_t[:, : len(index)]
    floor = []
    for _ in range(20):
        t = time.perf_counter()
        view.max()
        floor.append(time.perf_counter() - t)
    raw_mb = n * DIM * 4 / 2**20
    lexical_bytes = index._lexical.nbytes()
    return {
        "contender": "blocklearn dense (numpy fp32)",
        "n": n,
        **percentiles(dense),
        "lexical": percentiles(lexical),
        "whole": percentiles(whole),
        "added_p50_ms": percentiles(whole)["p50_ms"] - percentiles(dense)["p50_ms"],
        "floor_ms": float(np.median(floor) * 1000),
        "upsert_us": update_us,
        "delete_us": delete_us,
        "build_s": build_s,
        "reload_ms": reload_ms,
        "bytes_per_example": index.nbytes() / n,
        "lexical_bytes_per_example": lexical_bytes / n,
        "vocabulary": index._lexical.postings.vocabulary,
        "rss_mb": index_rss,
        "raw_mb": raw_mb,
        "results": results,
    }


def worker_faiss(n: int) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(1)
    matrix, queries = data(n)
    index = faiss.IndexFlatIP(DIM)
    index.add(matrix)
    samples, results = [], []
    for q in queries:
        t = time.perf_counter()
        _, ids = index.search(q[None, :], K)
        samples.append(time.perf_counter() - t)
        results.append([int(i) for i in ids[0]])
    return {
        "contender": f"faiss {faiss.__version__} IndexFlatIP",
        "n": n,
        **percentiles(samples),
        "results": results,
    }


def run_worker(kind: str, n: int) -> dict[str, Any] | None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.index_bench", "--worker", kind, "--sizes", str(n)],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if out.returncode != 0:
        reason = out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode
        print(f"  {kind} at {n}: failed: {reason}")
        return None
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def recall(ours: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ours, exact, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-faiss", action="store_true")
    parser.add_argument("--worker", choices=["numpy", "faiss"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fn = worker_numpy if args.worker == "numpy" else worker_faiss
        print(json.dumps(fn(args.sizes[0])))
        return
    print(f"d={DIM} + lexical channel, {QUERIES} queries, top-{K}, one thread each")
    header = f"{'rows':>9} {'contender':<34} {'p50 ms':>7} {'p99 ms':>7} {'recall':>6}"
    print(header)
    summary = []
    for n in args.sizes:
        ours = run_worker("numpy", n)
        theirs = None if args.no_faiss else run_worker("faiss", n)
        if ours is None:
            continue
        exact = ours["results"]  # fp32 brute force is exact
        for r in [ours] + ([theirs] if theirs else []):
            got = recall(r["results"], exact)
            print(f"{n:>9} {r['contender']:<34} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {got:6.3f}")
        for part in ("lexical", "whole"):
            name = "blocklearn lexical alone" if part == "lexical" else "blocklearn whole search (fused)"
            print(f"{n:>9} {name:<34} {ours[part]['p50_ms']:7.2f} {ours[part]['p99_ms']:7.2f}")
        report(ours, theirs)
        summary.append((ours, theirs))
    print()
    print(
        "| rows | whole search p50 / p99 | dense part p50 / p99 | FAISS IndexFlatIP p50 / p99"
        " | lexical adds (p50) | upsert / delete per row | bytes per example (lexical) | process RSS added |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for ours, theirs in summary:
        faiss = f"{theirs['p50_ms']:.2f} / {theirs['p99_ms']:.2f} ms" if theirs else "-"
        print(
            f"| {ours['n']:,} | {ours['whole']['p50_ms']:.2f} / {ours['whole']['p99_ms']:.2f} ms"
            f" | {ours['p50_ms']:.2f} / {ours['p99_ms']:.2f} ms | {faiss} | {ours['added_p50_ms']:.2f} ms"
            f" | {ours['upsert_us']:.0f} / {ours['delete_us']:.0f} µs"
            f" | {ours['bytes_per_example']:,.0f} ({ours['lexical_bytes_per_example']:,.0f})"
            f" | {ours['rss_mb']:.0f} MB |"
        )


def report(ours: dict[str, Any], theirs: dict[str, Any] | None) -> None:
    pad = " " * 10
    vs_faiss = f", {ours['p50_ms'] / theirs['p50_ms']:.2f}x faiss" if theirs else ""
    row_write = max(ours["upsert_us"], ours["delete_us"])
    print(
        f"{pad}read-bandwidth floor {ours['floor_ms']:.2f} ms"
        f" (dense part p50 is {ours['p50_ms'] / ours['floor_ms']:.2f}x the floor{vs_faiss});"
        f" the lexical channel adds {ours['added_p50_ms']:.2f} ms p50 to a search"
    )
    print(
        f"{pad}upsert {ours['upsert_us']:.1f} us, delete {ours['delete_us']:.1f} us per row (text included);"
        f" full reload {ours['reload_ms']:.1f} ms ({ours['reload_ms'] * 1000 / row_write:.0f}x a row write);"
        f" built in {ours['build_s']:.1f} s"
    )
    print(
        f"{pad}{ours['bytes_per_example']:.0f} bytes/example in the index, of which"
        f" {ours['lexical_bytes_per_example']:.0f} lexical ({ours['vocabulary']:,} terms);"
        f" process RSS +{ours['rss_mb']:.0f} MB for a {ours['raw_mb']:.0f} MB raw matrix"
        f" ({ours['rss_mb'] / ours['raw_mb']:.2f}x)"
    )


if __name__ == "__main__":
    main()
