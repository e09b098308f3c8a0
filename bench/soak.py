"""Soak: a steady stream of Blocks through the real emulator, controller and index processes.

Creates Blocks at --rate per second for --minutes (defaults: 20/s for 10 minutes, tldr-pages data)
and prints, every --every seconds: Blocks created, index size, resident memory of the controller and
the index, and the learning latency (Block created -> searchable) p50/p99 of that window, from the
index's own histogram. Memory should stay flat and latency stable.

    python -m bench.soak [--rate 20] [--minutes 10] [--every 60] [--keep N]
    python -m bench.soak --assistant [--tasks 1000] [--plot docs/outcomes.png --window 1m]

With --keep N, each Block is deleted once N newer ones exist (its Example goes with it): the number
of objects levels off, and so must both processes' memory.

With --assistant, the Blocks are what a simulated assistant records (blocklearn.devtools.assistant):
for each turn it searches the index through the client, a stand-in model suggests (it knows --known
of the tldr tasks, follows an example holding the answer --follows of the time, else guesses wrong),
the person runs the right command (failing --fails of the time), and the Block records what the
model was shown. Tasks recur (Zipf-like), so corrections come back as examples; each row then adds
the acceptance and retrieval-hit ratios of its window, from the controller's counter. --plot starts a
real Prometheus scraping both processes and draws the dashboard's two ratios over time into a PNG.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import kubernetes
from prometheus_client.parser import text_string_to_metric_families

from bench import outcomes_plot
from bench.reconcile_throughput import block
from blocklearn.client import Client
from blocklearn.devtools.assistant import Assistant, popular, tldr_tasks
from blocklearn.devtools.dev import Ports, Stack
from blocklearn.devtools.prometheus import Prometheus
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


def suggestions(url: str) -> Counter[tuple[str, str]]:
    """blocklearn_suggestions_total by (outcome, retrieval), from the controller's /metrics."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "blocklearn_suggestions":
            for s in family.samples:
                if s.name.endswith("_total"):
                    counts[(s.labels["outcome"], s.labels["retrieval"])] = s.value
    return counts


def ratios(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]) -> str:
    """The acceptance and retrieval-hit ratios of the Blocks counted between two scrapes."""
    d = after - before
    ran = sum(v for (o, _), v in d.items() if o in ("Accepted", "Corrected", "Failed"))
    shown = sum(v for (_, r), v in d.items() if r in ("Hit", "Miss"))
    accepted = sum(v for (o, _), v in d.items() if o == "Accepted")
    hits = sum(v for (_, r), v in d.items() if r == "Hit")
    return f" {accepted / ran if ran else float('nan'):9.2f} {hits / shown if shown else float('nan'):6.2f}"


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
    parser.add_argument("--assistant", action="store_true", help="Blocks from a simulated assistant (above)")
    parser.add_argument("--tasks", type=int, default=1000, help="tldr tasks the assistant is asked (random)")
    parser.add_argument("--known", type=float, default=0.2, help="share of tasks the model knows already")
    parser.add_argument(
        "--follows", type=float, default=0.85, help="how often the model uses a right example"
    )
    parser.add_argument("--fails", type=float, default=0.05, help="share of runs that fail")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="draw the dashboard's ratios into this PNG (--assistant)")
    parser.add_argument("--window", default="1m", help="the ratios' window in the plot (the rules use 1h)")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.data.read_text().splitlines()]
    rng = random.Random(args.seed)
    tasks = tldr_tasks(rng.sample(records, args.tasks), args.known, rng)
    stack = Stack(Path(tempfile.mkdtemp(prefix="blocklearn-soak-")), Ports.free())
    stack.start()
    api = kubernetes.client.CustomObjectsApi(api_client(str(stack.kubeconfig)))
    client = Client(stack.index_url, kubeconfig=str(stack.kubeconfig))
    assistant = Assistant(client, rng, follows=args.follows, fails=args.fails)
    prometheus = None
    if args.plot:
        targets = {
            "blocklearn-controller": f"127.0.0.1:{stack.ports.metrics}",
            "blocklearn-index": f"127.0.0.1:{stack.ports.index}",
        }
        prometheus = Prometheus(stack.directory / "prometheus", targets, [outcomes_plot.RULES], "5s").start()
    pids = {c.name: c.proc.pid for c in stack.children if c.proc is not None}
    metrics_url = f"{stack.index_url}/metrics"
    controller_url = f"http://127.0.0.1:{stack.ports.metrics}/metrics"
    kept = f", keeping the newest {args.keep}" if args.keep else ""
    mode = f", a simulated assistant over {args.tasks} tldr tasks" if args.assistant else ""
    print(f"soak: {args.rate:g} Blocks/s for {args.minutes:g} min{kept}{mode}; logs in {stack.directory}")
    header = (
        f"{'min':>5} {'blocks':>7} {'indexed':>8} {'ctl MB':>7} {'index MB':>9} {'p50 s':>6} {'p99 s':>6}"
    )
    print(header + (f" {'accepted':>9} {'hits':>6}" if args.assistant else ""))
    try:
        started = time.monotonic()
        end = started + args.minutes * 60
        next_report = started + args.every
        last = histogram(metrics_url)
        counted = suggestions(controller_url)
        created = 0
        wall_start = time.time()
        while True:
            now_s = time.monotonic()
            due = int((min(now_s, end) - started) * args.rate)
            while created < due:
                if args.assistant:
                    assistant.turn(popular(tasks, rng), f"soak-{created:07d}")
                else:
                    body = block(
                        created, records[created % len(records)], generated="echo todo", prefix="soak"
                    )
                    api.create_namespaced_custom_object(
                        "blocklearn.dev", "v1alpha1", "default", "blocks", body
                    )
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
                    f" {quantile(last, now, 0.5):6g} {quantile(last, now, 0.99):6g}"
                    + (ratios(counted, counted_now := suggestions(controller_url)) if args.assistant else ""),
                    flush=True,
                )
                last, next_report = now, next_report + args.every
                if args.assistant:
                    counted = counted_now
                if now_s >= end:
                    break
            time.sleep(0.02)
        if (dead := stack.dead()) is not None:
            raise SystemExit(f"{dead.name} died during the soak:\n{dead.tail()}")
        if prometheus is not None and args.plot:
            wall_end = time.time()
            time.sleep(10)  # the last scrapes
            title = (
                f"Blocklearn: a simulated assistant, {args.rate:g} requests/s over {args.tasks} tldr tasks"
                f"\n(model knows {args.known:.0%}, follows a right example {args.follows:.0%} of the time)"
            )
            outcomes_plot.plot(prometheus, wall_start, wall_end, args.window, args.plot, title)
            print(f"wrote {args.plot}")
    finally:
        client.close()
        if prometheus is not None:
            prometheus.stop()
        stack.stop()


if __name__ == "__main__":
    main()
