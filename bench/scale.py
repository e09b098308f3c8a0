"""Scale: a controller and an index starting on 100k converged Blocks and their Examples.

Seeds the emulator directly (a --persist file, not through the controller) with N Blocks and the
Examples and statuses the controller itself would have written (the same pure functions make them),
then starts the controller and the index and prints: the time and controller CPU to the end of its
first full pass (list in pages, reconcile every object from the cache), and of a second pass (a
resync: a replay of the cache, which reconciles only what did not end converged), the controller's
CPU while idle (resyncs included), the API writes they made (from the emulator's revision: should be
0), the controller's and the index's resident memory, and the index's time to ready. The last line
is all of it as one JSON object.

    python -m bench.scale [--blocks 100000] [--namespaces 10] [--embedder semantic|hashing] [--resync 60]

The default is what users get: the semantic model, each Example with a 384-d float16 vector (random
unit vectors: embedding 100k texts would take minutes and change nothing measured here; the
controller sees each stored vector as current by its model and text hash). `hashing` stores none.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bench.reconcile_throughput import DEFAULT_DATA, block, cpu_seconds, get_json, start
from bench.soak import rss_mb
from blocklearn.controller.desired import Outcome, block_status, new_example, source_changed_at
from blocklearn.devtools.dev import free_port
from blocklearn.devtools.emulator.api import SYSTEM_NAMESPACES
from blocklearn.embed import semantic
from blocklearn.embed.codec import encode, text_hash
from blocklearn.embed.hashing import HashingEmbedder
from blocklearn.embed.text import query_text
from blocklearn.learn.outcome import assess
from blocklearn.learn.rule import BlockRef, decide, example_name
from blocklearn.resources.conditions import set_condition
from blocklearn.resources.models import BlockSpec, Condition, ExampleStatus
from blocklearn.settings import Settings

BLOCKS = "blocklearn.dev/v1alpha1/blocks"
EXAMPLES = "blocklearn.dev/v1alpha1/examples"
STAMP = "2026-01-01T00:00:00Z"


def seed(path: Path, records: list[dict[str, str]], count: int, namespaces: int, embedder: str) -> int:
    """Write an emulator snapshot of `count` converged Blocks (and Examples); returns the revision."""
    if embedder == "semantic":
        model, dim = semantic.MODEL_NAME, semantic.DIM
    else:
        model, dim = HashingEmbedder(Settings().hashing_dim).model, 0  # stores no vector
    rng = np.random.default_rng(0)
    objects: list[list[Any]] = []
    rv = 100
    # Objects go only into namespaces that exist, as in a cluster; the API server's own are seeded
    # too, so that restoring the snapshot writes nothing.
    for name in [*SYSTEM_NAMESPACES, *(f"team-{i}" for i in range(namespaces))]:
        rv += 1
        namespace_meta = {"name": name, "uid": str(uuid.uuid4()), "resourceVersion": str(rv)}
        namespace_meta |= {"creationTimestamp": STAMP, "labels": {"kubernetes.io/metadata.name": name}}
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": namespace_meta}
        namespace |= {"spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
        objects.append([["/v1/namespaces", None, name], namespace])
    examples: dict[tuple[str, str], dict[str, Any]] = {}  # identical corrections share one
    for i in range(count):
        record, round_ = records[i % len(records)], i // len(records)
        if round_:  # past the data's end, a new context: each Block teaches its own correction
            record = {**record, "context": f"{record['context']} (round {round_})"}
        body = block(i, record, prefix=f"s{round_}")
        namespace = f"team-{i % namespaces}"
        rv += 1
        body["metadata"] = {
            "name": body["metadata"]["name"],  # type: ignore[index]
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": str(rv),
            "generation": 1,
            "creationTimestamp": STAMP,
        }
        meta = body["metadata"]
        spec = BlockSpec.model_validate(body["spec"])
        ref = BlockRef(name=meta["name"], uid=meta["uid"], learned_at=source_changed_at(body))
        decision = decide(spec, ref)
        outcome = Outcome.of(decision)
        name = example_name(decision.example) if decision.example is not None else None
        # Decided now: the default TTL (a day) does not expire these Blocks while the bench runs.
        status = block_status(body, outcome, name, assess(spec, {}))
        body["status"] = status.model_dump(by_alias=True, exclude_none=True, mode="json")
        objects.append([[BLOCKS, namespace, meta["name"]], body])
        if decision.example is None or name is None:
            continue
        if (namespace, name) in examples:  # a repeat: counted in the Example the first one made
            counted = examples[(namespace, name)]["status"]
            counted["occurrences"] += 1
            counted["lastSeenAt"] = status.decided_at
            continue
        example = new_example(body, decision.example, name)
        text, _ = query_text(decision.example.query.cells)
        rv += 1
        example["metadata"].update(
            uid=str(uuid.uuid4()), resourceVersion=str(rv), generation=1, creationTimestamp=STAMP
        )
        conditions = set_condition([], "Embedded", "True", "Embedded", f"Embedded with {model}.", 1)
        vector = rng.standard_normal(dim).astype(np.float32)
        example["status"] = ExampleStatus(
            embedding=encode(vector / np.linalg.norm(vector), Settings().embedding_dtype) if dim else None,
            embedding_dim=dim or None,
            embedding_model=model,
            text_hash=text_hash(text, model),
            embedded_at=STAMP,
            source_changed_at=STAMP,
            conditions=[Condition.model_validate(c) for c in conditions],
            occurrences=1,
        ).model_dump(by_alias=True, exclude_none=True, mode="json")
        examples[(namespace, name)] = example
        objects.append([[EXAMPLES, namespace, example["metadata"]["name"]], example])
    path.write_text(json.dumps({"resourceVersion": rv, "objects": objects}))
    return rv


def revision(api: str) -> int:
    url = f"{api}/apis/blocklearn.dev/v1alpha1/blocks?limit=1"
    return int(get_json(url)["metadata"]["resourceVersion"])


def passes(log: Path) -> list[dict[str, float]]:
    """The controller's "Resynced:" lines, as numbers."""
    found = []
    for line in log.read_text().splitlines():
        if "Resynced:" in line:
            found.append({k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--blocks", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--embedder", choices=["semantic", "hashing"], default="semantic")
    parser.add_argument("--resync", type=float, default=60, help="seconds between the controller's passes")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=Path, help="keep the seeded snapshot here, and reuse it if it exists")
    parser.add_argument("--idle", type=float, default=60, help="seconds of idle controller CPU to measure")
    args = parser.parse_args()
    records = [json.loads(line) for line in args.data.read_text().splitlines()]
    tmp = Path(tempfile.mkdtemp(prefix="blocklearn-scale-"))
    started = time.perf_counter()
    snapshot = tmp / "seed.json"
    if args.seed is not None and args.seed.exists():
        shutil.copy(args.seed, snapshot)
        seeded_rv = json.loads(snapshot.read_text())["resourceVersion"]
    else:
        seeded_rv = seed(snapshot, records, args.blocks, args.namespaces, args.embedder)
        if args.seed is not None:
            shutil.copy(snapshot, args.seed)
    print(
        f"seeded {args.blocks} Blocks and their Examples in {time.perf_counter() - started:.0f} s", flush=True
    )
    api_port, index_port = free_port(), free_port()
    api, index = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{index_port}"
    env = {
        "KUBECONFIG": str(tmp / "kubeconfig"),
        "BLOCKLEARN_EMBEDDER": args.embedder,
        "BLOCKLEARN_RESYNC_SECONDS": str(args.resync),
        "MALLOC_ARENA_MAX": "2",  # as the image, the chart and `blocklearn dev` run both processes
    }
    procs = [
        start(
            [
                "emulator",
                "--port",
                str(api_port),
                "--kubeconfig",
                env["KUBECONFIG"],
                "--persist",
                str(tmp / "seed.json"),
            ],
            tmp / "emu.log",
            {},
        )
    ]
    try:
        while not (tmp / "kubeconfig").exists():
            time.sleep(0.2)
        assert revision(api) == seeded_rv
        t0 = time.perf_counter()
        controller = start(["controller", "--metrics-port", "0"], tmp / "controller.log", env)
        procs.append(controller)
        while not passes(tmp / "controller.log"):
            time.sleep(0.5)
        first_time, first_cpu = time.perf_counter() - t0, cpu_seconds(controller.pid)
        first_rss = rss_mb(controller.pid)
        print(
            f"controller: first full pass (list {args.blocks} Blocks and their Examples in pages, reconcile"
            f" every object) after {first_time:.1f} s, {first_cpu:.1f} s CPU (process start included),"
            f" RSS {first_rss:.0f} MB; writes so far: {revision(api) - seeded_rv}",
            flush=True,
        )
        t1 = time.perf_counter()
        index_proc = start(
            ["index", "--port", str(index_port), "--probe-port", str(free_port())], tmp / "index.log", env
        )
        procs.append(index_proc)
        while True:
            try:
                if get_json(f"{index}/readyz")["ready"]:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        ready, ready_cpu = time.perf_counter() - t1, cpu_seconds(index_proc.pid)
        size = get_json(f"{index}/readyz")["indexSize"]
        print(
            f"index: ready after {ready:.1f} s ({ready_cpu:.1f} s CPU, process start included) with {size}"
            f" Examples, RSS {rss_mb(index_proc.pid):.0f} MB",
            flush=True,
        )
        while len(passes(tmp / "controller.log")) < 2:
            time.sleep(1)
        second = passes(tmp / "controller.log")[1]
        print(
            "controller: resync pass (a replay of the cache; reconciles what did not end converged)"
            f" {second['seconds']:.1f} s, {second['cpu_seconds']:.1f} s CPU, {second['queued']:.0f} queued;"
            f" RSS {rss_mb(controller.pid):.0f} MB; writes since the start: {revision(api) - seeded_rv}",
            flush=True,
        )
        idle_from = cpu_seconds(controller.pid)
        time.sleep(args.idle)
        idle = (cpu_seconds(controller.pid) - idle_from) / args.idle
        figures = {
            "blocks": args.blocks,
            "examples": size,
            "first_pass_seconds": round(first_time, 1),
            "first_pass_cpu_seconds": round(first_cpu, 1),
            "resync_seconds": second["seconds"],
            "resync_cpu_seconds": second["cpu_seconds"],
            "idle_cpu_percent": round(100 * idle, 2),
            "controller_rss_mb": round(rss_mb(controller.pid)),
            "index_rss_mb": round(rss_mb(index_proc.pid)),
            "index_ready_seconds": round(ready, 1),
            "index_ready_cpu_seconds": round(ready_cpu, 1),
            "writes": revision(api) - seeded_rv,
        }
        print(
            f"controller: idle {100 * idle:.2f}% of a core over {args.idle:.0f} s (resyncs included);"
            f" RSS {figures['controller_rss_mb']} MB; index RSS {figures['index_rss_mb']} MB",
            flush=True,
        )
        print(json.dumps(figures), flush=True)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            proc.wait(60)
        for name in ("seed.json",):
            (tmp / name).unlink(missing_ok=True)
        print(f"logs: {tmp}")


if __name__ == "__main__":
    main()
