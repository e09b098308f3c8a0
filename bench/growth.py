"""Growth: a steady stream of notebook-shaped Blocks through the real processes, with a short TTL and
a small cap. What is stored, and the processes' memory, must level off.

Creates teaching notebook-shaped Blocks (tldr-pages: 16 context cells, 300-character outputs;
`blocklearn.devtools.notebooks`) at --rate per second for --minutes, a --repeat share of them
repeating an earlier correction, through `blocklearn dev`'s emulator, controller and index, with
BLOCKLEARN_BLOCK_TTL_SECONDS=--ttl and BLOCKLEARN_MAX_EXAMPLES_PER_NAMESPACE=--cap. Every --every
seconds it prints: Blocks created, Blocks and Examples stored, the bytes stored (the controller's
blocklearn_stored_bytes), the controller's and the index's RSS, and the API writes per Block so far.
Then it stops creating and waits for every Block to expire, so that the writes per teaching Block
cover whole lives, expiry included: the emulator's resourceVersion (one for every write, as etcd's
revision) over the run, less the evictions, over the Blocks created. The last line is one JSON object.

    python -m bench.growth [--rate 10] [--minutes 5] [--ttl 30] [--cap 500] [--repeat 0.2]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes

from bench.soak import rss_mb
from blocklearn.devtools.dev import Ports, Stack
from blocklearn.devtools.notebooks import PAGE_EXAMPLES, load, notebook_block, pages
from blocklearn.learn.rule import decide
from blocklearn.resources.models import BlockRef, BlockSpec
from blocklearn.runtime.kubeclient import api_client

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr" / "blocks.jsonl"
GROUP, VERSION = "blocklearn.dev", "v1alpha1"


def samples(url: str) -> dict[str, float]:
    """A /metrics page as {sample: value}, labels included in the sample's name."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


class Stream:
    """Teaching notebook-shaped Blocks, in page order; a share repeats an earlier correction (the
    same notebook and command, another suggestion: another person making the same fix)."""

    def __init__(self, records: list[dict[str, str]], repeat: float, seed: int = 7) -> None:
        self.pages = pages(records)
        self.repeat, self.rng = repeat, random.Random(seed)
        self.made = 0
        self.cursor = 0  # the next notebook example to make a new correction of
        self.taught: list[tuple[int, int]] = []  # (page, example) of each correction made so far

    def next(self) -> dict[str, Any]:
        name = f"growth-{self.made:07d}"
        self.made += 1
        if self.taught and self.rng.random() < self.repeat:
            page, asked = self.rng.choice(self.taught)
            return notebook_block(name, list(self.pages[page]), asked, generated=f"echo {name}")
        while True:  # a suggestion run unchanged teaches nothing: such examples are passed over
            page, asked = (self.cursor // PAGE_EXAMPLES) % len(self.pages), self.cursor % PAGE_EXAMPLES
            self.cursor += 1
            body = notebook_block(name, list(self.pages[page]), asked)
            if decide(BlockSpec.model_validate(body["spec"]), BlockRef(name=name)).teaches:
                self.taught.append((page, asked))
                return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10, help="Blocks created per second")
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--every", type=float, default=30, help="seconds between rows")
    parser.add_argument("--ttl", type=float, default=30, help="BLOCKLEARN_BLOCK_TTL_SECONDS")
    parser.add_argument("--cap", type=int, default=500, help="BLOCKLEARN_MAX_EXAMPLES_PER_NAMESPACE")
    parser.add_argument("--repeat", type=float, default=0.2, help="share of Blocks repeating a correction")
    parser.add_argument("--embedder", default="semantic", choices=["semantic", "hashing"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    stream = Stream(load(args.data), args.repeat)
    env = {
        "BLOCKLEARN_BLOCK_TTL_SECONDS": str(args.ttl),
        "BLOCKLEARN_MAX_EXAMPLES_PER_NAMESPACE": str(args.cap),
        "BLOCKLEARN_EMBEDDER": args.embedder,
    }
    stack = Stack(Path(tempfile.mkdtemp(prefix="blocklearn-growth-")), Ports.free(), env=env)
    stack.start()
    api = kubernetes.client.CustomObjectsApi(api_client(str(stack.kubeconfig)))
    pids = {c.name: c.proc.pid for c in stack.children if c.proc is not None}
    metrics_url = f"http://127.0.0.1:{stack.ports.metrics}/metrics"

    def revision() -> int:
        listed = api.list_namespaced_custom_object(GROUP, VERSION, "default", "blocks", limit=1)
        return int(listed["metadata"]["resourceVersion"])

    def state() -> dict[str, Any]:
        m = samples(metrics_url)
        stored = {
            kind: m.get(f'blocklearn_stored_objects{{kind="{kind}"}}', 0.0) for kind in ("block", "example")
        }
        size = {
            kind: m.get(f'blocklearn_stored_bytes{{kind="{kind}"}}', 0.0) for kind in ("block", "example")
        }
        evicted = sum(v for k, v in m.items() if k.startswith("blocklearn_examples_evicted_total{"))
        return {
            "blocks_stored": int(stored["block"]),
            "examples_stored": int(stored["example"]),
            "bytes_stored": int(size["block"] + size["example"]),
            "bytes_per_block": round(size["block"] / stored["block"]) if stored["block"] else None,
            "bytes_per_example": round(size["example"] / stored["example"]) if stored["example"] else None,
            "examples_evicted": int(evicted),
            "blocks_expired": int(m.get("blocklearn_blocks_expired_total", 0.0)),
            "controller_rss_mb": round(rss_mb(pids["controller"])),
            "index_rss_mb": round(rss_mb(pids["index"])),
        }

    print(
        f"growth: {args.rate:g} teaching Blocks/s for {args.minutes:g} min ({args.repeat:.0%} repeating a"
        f" correction), TTL {args.ttl:g} s, cap {args.cap}, {args.embedder}; logs in {stack.directory}"
    )
    header = ("s", "created", "blocks", "examples", "stored MB", "ctl MB", "index MB", "writes/Block")
    print("{:>6} {:>8} {:>7} {:>9} {:>10} {:>7} {:>9} {:>13}".format(*header))

    def row(elapsed: float, now: dict[str, Any], writes: float) -> None:
        print(
            f"{elapsed:6.0f} {stream.made:8d} {now['blocks_stored']:7d} {now['examples_stored']:9d}"
            f" {now['bytes_stored'] / 1e6:10.2f} {now['controller_rss_mb']:7d} {now['index_rss_mb']:9d}"
            f" {writes:13.2f}",
            flush=True,
        )

    try:
        first = revision()
        started = time.monotonic()
        end = started + args.minutes * 60
        next_report = started + args.every
        while (now_s := time.monotonic()) < end:
            while stream.made < int((now_s - started) * args.rate):
                api.create_namespaced_custom_object(GROUP, VERSION, "default", "blocks", stream.next())
            if now_s >= next_report:
                now = state()
                row(
                    now_s - started, now, (revision() - first - now["examples_evicted"]) / max(stream.made, 1)
                )
                next_report += args.every
            if (dead := stack.dead()) is not None:
                raise SystemExit(f"{dead.name} died:\n{dead.tail()}")
            time.sleep(0.02)
        steady = state()  # at the end of the stream: what a steady flow keeps stored
        # Drain: every Block expires, so each Block's writes are counted over its whole life.
        deadline = time.monotonic() + args.ttl + 120
        while api.list_namespaced_custom_object(GROUP, VERSION, "default", "blocks", limit=1)["items"]:
            if time.monotonic() > deadline:
                raise SystemExit("Blocks did not all expire within their TTL and two minutes")
            time.sleep(1)
        time.sleep(2)  # the controller's metrics catch up with the last expiries and evictions
        drained = state()
        writes = (revision() - first - drained["examples_evicted"]) / stream.made
        row(time.monotonic() - started, drained, writes)
    finally:
        stack.stop()
    print(
        json.dumps(
            {
                **steady,
                "blocks_created": stream.made,
                "corrections": len(stream.taught),
                "writes_per_teaching_block": round(writes, 3),
                "after_drain": {k: drained[k] for k in ("blocks_stored", "examples_stored", "bytes_stored")},
                "settings": {"rate": args.rate, "minutes": args.minutes, "ttl": args.ttl, "cap": args.cap},
            }
        )
    )


if __name__ == "__main__":
    main()
