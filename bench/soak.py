"""Soak: a steady stream of Blocks through the real emulator, controller and index processes.

Creates Blocks at --rate per second for --minutes (defaults: 20/s for 10 minutes, tldr-pages data)
and prints, every --every seconds: Blocks created, index size, resident memory of the controller and
the index, and the learning latency (Block created -> searchable) p50/p99 of that window, from the
index's own histogram. Memory should stay flat and latency stable.

    python -m bench.soak [--rate 20] [--minutes 10] [--every 60] [--keep N]

With --keep N, each Block is deleted once N newer ones exist (its Example goes with it): the number
of objects levels off, and so must both processes' memory.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import kubernetes

from bench.reconcile_throughput import block
from blocklearn.devtools.dev import Ports, Stack
from blocklearn.runtime.kubeclient import api_client

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tldr" / "blocks.jsonl"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def histogram(url: str) -> dict[float, float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    buckets = {}
    for line in text.splitlines():
        if line.startswith("blocklearn_learning_latency_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.split()[-1])
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bucket bound holding the q-quantile of the observations between two scrapes."""
    bounds = sorted(after)
    total = after[bounds[-1]] - before.get(bounds[-1], 0)
    if total <= 0:
        return float("nan")
    for bound in bounds:
        if after[bound] - before.get(bound, 0) >= q * total:
            return bound
    return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--every", type=float, default=60)
    parser.add_argument(
        "--keep",
        type=int,
        default=0,
        help="delete each Block once this many newer ones exist: a steady number of objects (0: keep all)",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    records = [json.loads(line) for line in args.data.read_text().splitlines()]
    stack = Stack(Path(tempfile.mkdtemp(prefix="blocklearn-soak-")), Ports.free())
    stack.start()
    api = kubernetes.client.CustomObjectsApi(api_client(str(stack.kubeconfig)))
    pids = {c.name: c.proc.pid for c in stack.children if c.proc is not None}
    metrics_url = f"{stack.index_url}/metrics"
    kept = f", keeping the newest {args.keep}" if args.keep else ""
    print(f"soak: {args.rate:g} Blocks/s for {args.minutes:g} min{kept}; logs in {stack.directory}")
    print(f"{'min':>5} {'blocks':>7} {'indexed':>8} {'ctl MB':>7} {'index MB':>9} {'p50 s':>6} {'p99 s':>6}")
    try:
        started = time.monotonic()
        end = started + args.minutes * 60
        next_report = started + args.every
        last = histogram(metrics_url)
        created = 0
        while True:
            now_s = time.monotonic()
            due = int((min(now_s, end) - started) * args.rate)
            while created < due:
                body = block(created, records[created % len(records)], generated="echo todo", prefix="soak")
                api.create_namespaced_custom_object("blocklearn.dev", "v1alpha1", "default", "blocks", body)
                if args.keep and created >= args.keep:
                    old = f"soak-{created - args.keep:07d}"  # as block() names them
                    api.delete_namespaced_custom_object(
                        "blocklearn.dev", "v1alpha1", "default", "blocks", old
                    )
                created += 1
            if now_s >= next_report or now_s >= end:
                now = histogram(metrics_url)
                with urllib.request.urlopen(f"{stack.index_url}/readyz", timeout=10) as resp:
                    size = json.load(resp)["indexSize"]
                print(
                    f"{(time.monotonic() - started) / 60:5.1f} {created:7d} {size:8d}"
                    f" {rss_mb(pids['controller']):7.0f} {rss_mb(pids['index']):9.0f}"
                    f" {quantile(last, now, 0.5):6g} {quantile(last, now, 0.99):6g}",
                    flush=True,
                )
                last, next_report = now, next_report + args.every
                if now_s >= end:
                    break
            time.sleep(0.02)
        if (dead := stack.dead()) is not None:
            raise SystemExit(f"{dead.name} died during the soak:\n{dead.tail()}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
