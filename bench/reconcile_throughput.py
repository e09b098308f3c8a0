"""Blocks reconciled per second, end to end: emulator, controller and index as real processes.

Creates N Blocks from the tldr-pages data over HTTP, then waits until every Example is embedded and
the index holds all of them. Prints throughput and the learning latency the index measured.

    python -m bench.reconcile_throughput [--blocks 1000] [--data ../shared/data/tldr/blocks.jsonl]
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

from blocklearn.dev import free_port
from blocklearn.learning import decide
from blocklearn.models import BlockRef, BlockSpec

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


async def create_all(api: str, bodies: list[dict[str, object]], concurrency: int = 16) -> None:
    gate = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def one(body: dict[str, object]) -> None:
            async with gate, session.post(f"{api}{BASE}/blocks", json=body) as resp:
                assert resp.status == 201, await resp.text()

        await asyncio.gather(*(one(b) for b in bodies))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.data.read_text().splitlines()[: args.blocks]]
    tmp = Path(tempfile.mkdtemp(prefix="blocklearn-bench-"))
    api_port, index_port = free_port(), free_port()
    api, index = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{index_port}"
    env = {"KUBECONFIG": str(tmp / "kubeconfig")}
    procs = [
        start(["emulator", "--port", str(api_port), "--kubeconfig", env["KUBECONFIG"]], tmp / "emu.log", {})
    ]
    try:
        while not (tmp / "kubeconfig").exists():
            time.sleep(0.1)
        procs.append(
            start(
                [
                    "controller",
                    "--metrics-port",
                    "0",
                    "--liveness",
                    f"http://127.0.0.1:{free_port()}/healthz",
                ],
                tmp / "controller.log",
                env,
            )
        )
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
        started = time.perf_counter()
        asyncio.run(create_all(api, bodies))
        created = time.perf_counter() - started
        print(
            f"created {len(records)} Blocks in {created:.1f} s ({len(records) / created:.0f}/s)", flush=True
        )
        while True:
            ready = get_json(f"{index}/readyz")
            if ready["indexSize"] >= teaching:
                break
            time.sleep(0.2)
        total = time.perf_counter() - started
        examples = get_json(f"{api}{BASE}/examples")["items"]
        embedded = sum(1 for e in examples if e.get("status", {}).get("embedding"))
        with urllib.request.urlopen(f"{index}/metrics", timeout=30) as resp:
            text = resp.read().decode()
        count = metric(text, "blocklearn_learning_latency_seconds_count")
        mean = metric(text, "blocklearn_learning_latency_seconds_sum") / count if count else float("nan")
        print(
            f"{len(records)} Blocks -> {embedded} embedded Examples -> {ready['indexSize']} searchable"
            f" in {total:.1f} s: {len(records) / total:.1f} Blocks/s end to end"
        )
        print(
            f"learning latency (Block created -> searchable), mean over {count:.0f}: {mean:.1f} s"
            " (creationTimestamp has 1 s resolution)"
        )
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
