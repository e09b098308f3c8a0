"""Blocks reconciled per second, end to end: emulator, controller and index as real processes.

Creates N Blocks from the tldr-pages data over HTTP, then waits until every Example is embedded and
the index holds all of them. For each embedder asked for, prints: Blocks/s end to end, the
controller's CPU per Block from its process times (and the embedding model's share of it, which the
controller counts in blocklearn_embedding_cpu_seconds_total), API writes per Block (from the
emulator's resourceVersion, which moves once per write to any object, as etcd's revision), and the
learning latency the index measured.

    python -m bench.reconcile_throughput [--blocks 1000] [--embedder hashing ...] [--data FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from blocklearn.devtools.dev import free_port
from blocklearn.learn.rule import decide
from blocklearn.resources.conditions import find
from blocklearn.resources.models import BlockRef, BlockSpec

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr" / "blocks.jsonl"
BASE = "/apis/blocklearn.dev/v1alpha1/namespaces/default"


def block(
    i: int, record: dict[str, str], generated: str | None = None, prefix: str = "tldr"
) -> dict[str, object]:
    """A Block from a tldr record; the suggestion defaults to the page name (some then run unchanged)."""
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "metadata": {"name": f"{prefix}-{i:07d}"},
        "spec": {
            "doc": {
                "cells": [
                    {"kind": "markup", "contents": record["context"]},
                    {"kind": "markup", "contents": record["doc"]},
                ]
            },
            "generatedCell": {
                "kind": "code",
                "language": "bash",
                "contents": record["page"] if generated is None else generated,
            },
            "executedCell": {"kind": "code", "language": "bash", "contents": record["command"]},
            "exitCode": 0,
        },
    }


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "blocklearn", *args],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.load(resp)


def metric(text: str, name: str) -> float:
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " "))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def revision(api: str) -> int:
    """The emulator's resourceVersion counter, from a list's metadata."""
    return int(get_json(f"{api}{BASE}/blocks?limit=1")["metadata"]["resourceVersion"])


async def create_all(api: str, bodies: list[dict[str, object]], concurrency: int = 16) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(body: dict[str, object]) -> None:
            async with gate, session.post(f"{api}{BASE}/blocks", json=body) as resp:
                assert resp.status == 201, await resp.text()

        await asyncio.gather(*(one(b) for b in bodies))


def run(records: list[dict[str, str]], embedder: str) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="blocklearn-bench-"))
    api_port, index_port, metrics_port = free_port(), free_port(), free_port()
    api, index = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{index_port}"
    env = {"KUBECONFIG": str(tmp / "kubeconfig"), "BLOCKLEARN_EMBEDDER": embedder}
    procs = [
        start(["emulator", "--port", str(api_port), "--kubeconfig", env["KUBECONFIG"]], tmp / "emu.log", {})
    ]
    try:
        while not (tmp / "kubeconfig").exists():
            time.sleep(0.1)
        controller = start(
            [
                "controller",
                "--metrics-port",
                str(metrics_port),
            ],
            tmp / "controller.log",
            env,
        )
        procs.append(controller)
        procs.append(start(["index", "--port", str(index_port)], tmp / "index.log", env))
        while True:
            try:
                if get_json(f"{index}/readyz")["ready"]:
                    break
            except OSError:
                time.sleep(0.2)
        bodies = [block(i, r) for i, r in enumerate(records)]
        # Some tldr commands equal their page name, the stand-in suggestion here: those are Unchanged.
        teaching = sum(
            1 for b in bodies if decide(BlockSpec.model_validate(b["spec"]), BlockRef(name="b")).teaches
        )
        controller_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
        while True:
            try:
                get_text(controller_metrics)
                break
            except OSError:
                time.sleep(0.2)
        model_before = metric(get_text(controller_metrics), "blocklearn_embedding_cpu_seconds_total")
        cpu_before, rv_before = cpu_seconds(controller.pid), revision(api)
        started = time.perf_counter()
        asyncio.run(create_all(api, bodies))
        created = time.perf_counter() - started
        print(
            f"[{embedder}] created {len(records)} Blocks in {created:.1f} s ({len(records) / created:.0f}/s)"
        )
        while True:
            ready = get_json(f"{index}/readyz")
            # Searchable with everything it will have: a row with its text but no vector yet is
            # found by words alone, so with a dense model count the rows with a current vector.
            if ready["vectors"]["current"] >= teaching and learned(api) >= len(records):
                break
            time.sleep(0.2)
        total = time.perf_counter() - started
        cpu = cpu_seconds(controller.pid) - cpu_before
        writes = revision(api) - rv_before
        model = metric(get_text(controller_metrics), "blocklearn_embedding_cpu_seconds_total") - model_before
        examples = get_json(f"{api}{BASE}/examples")["items"]
        embedded = sum(
            1
            for e in examples
            if (find((e.get("status") or {}).get("conditions") or [], "Embedded") or {}).get("status")
            == "True"
        )
        text = get_text(f"{index}/metrics")
        count = metric(text, "blocklearn_learning_latency_seconds_count")
        mean = metric(text, "blocklearn_learning_latency_seconds_sum") / count if count else float("nan")
        n = len(records)
        print(
            f"[{embedder}] {n} Blocks ({teaching} teaching) -> {embedded} embedded Examples ->"
            f" {ready['vectors']['current']} searchable in {total:.1f} s: {n / total:.1f} Blocks/s end to end"
        )
        print(
            f"[{embedder}] controller CPU {1000 * cpu / n:.2f} ms per Block"
            f" ({1000 * (cpu - model) / n:.2f} ms without the model, the model {1000 * model / n:.2f} ms);"
            f" per teaching Block {1000 * (cpu - model) / teaching:.2f} ms without the model"
        )
        print(
            f"[{embedder}] API writes: {writes} for {n} Blocks, {writes / n:.2f} per Block"
            f" ({(writes - (n - teaching) * 2) / teaching:.2f} per teaching Block, counting 2 for each"
            " other: its create and its status)"
        )
        print(
            f"[{embedder}] learning latency (Block created -> searchable), mean over {count:.0f}:"
            f" {mean:.1f} s (creationTimestamp has 1 s resolution)",
            flush=True,
        )
        return {"blocks_per_s": n / total, "cpu_ms": 1000 * (cpu - model) / n, "writes": writes / n}
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return str(resp.read().decode())


def learned(api: str) -> int:
    """Blocks whose status the controller has written."""
    items = get_json(f"{api}{BASE}/blocks")["items"]
    return sum(1 for b in items if b.get("status", {}).get("observedGeneration"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--embedder", nargs="+", default=["hashing"], help="embedders to measure, one run each"
    )
    args = parser.parse_args()
    records = [json.loads(line) for line in args.data.read_text().splitlines()[: args.blocks]]
    results = {name: run(records, name) for name in args.embedder}
    print("\n| embedder | Blocks/s | controller CPU ms/Block (no model) | API writes/Block |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['blocks_per_s']:.1f} | {r['cpu_ms']:.2f} | {r['writes']:.2f} |")


if __name__ == "__main__":
    main()
