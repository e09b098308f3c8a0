"""Notebook-shaped Blocks from tldr-pages, for the size test and the growth benchmark.

A Block as an assistant records it from a real notebook: 16 context cells (the page's title and
summary, then the page's seven other examples as a markup cell and a code cell with a 300-character
output each, then the request), the suggestion (the bare tool name) and the command the person ran,
with the trace ids and execution time `blocklearn.client.record_block` sets. Issue 18 measured such a
Block at ~5.8 KB as stored when the client creates it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PAGE_EXAMPLES = 8  # the page's examples a notebook holds: 7 in its context, and the one asked for
OUTPUT_CHARS = 300
_WORDS = ["total", "drwxr-xr-x", "rw-r--r--", "root", "staff", "4096", "Jan", "12", "config", "logs", "ok"]

Record = Mapping[str, str]


def load(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pages(records: Iterable[Record]) -> list[list[Record]]:
    """tldr records grouped by page, pages of at least PAGE_EXAMPLES examples, in file order."""
    grouped: dict[tuple[str, str], list[Record]] = {}
    for record in records:
        grouped.setdefault((record["platform"], record["page"]), []).append(record)
    return [page[:PAGE_EXAMPLES] for page in grouped.values() if len(page) >= PAGE_EXAMPLES]


def output(command: str, chars: int = OUTPUT_CHARS) -> str:
    """A made-up terminal output of `chars` characters, the same for the same command."""
    rng = random.Random(hashlib.sha256(command.encode()).digest())
    text = ""
    while len(text) < chars:
        text += " ".join(rng.choice(_WORDS) for _ in range(8)) + "\n"
    return text[:chars]


def notebook_block(name: str, page: list[Record], asked: int, generated: str | None = None) -> dict[str, Any]:
    """The Block of the page's example `asked`, run in a notebook that already holds the others."""
    cells: list[dict[str, Any]] = [{"kind": "markup", "contents": page[0]["context"]}]
    for i, record in enumerate(page):
        if i != asked:
            cells.append({"kind": "markup", "contents": record["doc"]})
            cells.append(
                {
                    "kind": "code",
                    "language": "bash",
                    "contents": record["command"],
                    "outputs": [output(record["command"])],
                }
            )
    request = page[asked]
    cells.append({"kind": "markup", "contents": request["doc"]})
    trace = hashlib.sha256(f"{name}/{request['id']}".encode()).hexdigest()
    return {
        "apiVersion": "blocklearn.dev/v1alpha1",
        "kind": "Block",
        "metadata": {"name": name},
        "spec": {
            "doc": {"cells": cells},
            "generatedCell": {
                "kind": "code",
                "language": "bash",
                "contents": request["page"] if generated is None else generated,
            },
            "executedCell": {"kind": "code", "language": "bash", "contents": request["command"]},
            "exitCode": 0,
            "executedAt": "2026-11-26T10:42:00Z",
            "genTraceId": trace[:32],
            "execTraceIds": [trace[32:]],
        },
    }


def notebook_blocks(records: Iterable[Record], count: int, prefix: str = "nb") -> list[dict[str, Any]]:
    """`count` notebook-shaped Blocks, one per example of each page in turn (pages cycle)."""
    found = pages(records)
    return [
        notebook_block(f"{prefix}-{i:07d}", found[(i // PAGE_EXAMPLES) % len(found)], i % PAGE_EXAMPLES)
        for i in range(count)
    ]
