"""The `blocklearn` command: one entry point for every process and tool."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, NoReturn

from blocklearn import __version__, logs
from blocklearn.settings import Settings


def _run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine; SIGINT and SIGTERM set its stop event so it shuts down cleanly."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())


def _settings(
    args: argparse.Namespace,
    fields: tuple[str, ...] = ("namespaces", "embedder", "metrics_port", "log_format", "hashing_dim"),
) -> Settings:
    """The settings from BLOCKLEARN_* variables and the flags named `fields`; a wrong value is a
    one-line error."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    overrides: dict[str, Any] = {}
    for field in fields:
        value = getattr(args, field, None)
        if value is not None and value != []:
            overrides[field] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        wrong = "; ".join(
            f"BLOCKLEARN_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"blocklearn {args.command}: invalid setting {wrong}") from None
    except SettingsError as exc:  # a list setting that is not JSON, e.g. BLOCKLEARN_NAMESPACES=a,b
        hint = 'list settings are JSON, e.g. BLOCKLEARN_NAMESPACES=\'["team-a", "team-b"]\''
        raise SystemExit(f"blocklearn {args.command}: {exc} ({hint})") from None


def _require_free(command: str, host: str, port: int, flag: str) -> None:
    """Exit with one line if a port cannot be listened on (taken, or privileged); bound as servers
    bind, reusing addresses in TIME_WAIT."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            why = f"cannot listen on port {port} ({exc.strerror})"
            raise SystemExit(f"blocklearn {command}: {why}: move it with {flag}") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line that says where to look (exit code 2, as argparse),
    said by the subcommand it concerns."""

    commands: Mapping[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extra = self.parse_known_args(args, namespace)
        if extra:  # argparse leaves these to the top parser, whose usage is not the one to read
            self.commands.get(parsed.command, self).error(f"unrecognized arguments: {' '.join(extra)}")
        return parsed


def _number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
        if number < low or (high is not None and number > high):
            bound = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, not {number}")
        return number

    return parse


_port = _number(0, 65535)


def _k(value: str) -> int:
    from blocklearn.index.core import MAX_K

    return _number(1, MAX_K)(value)


def _url(value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    try:
        parts.port  # noqa: B018 (it raises on a port that is not a number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number in {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r} (for example http://127.0.0.1:8081)")
    return value


def _since(value: str) -> str:
    from blocklearn.controller.backfill import parse_time

    try:
        parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _add_common(p: argparse.ArgumentParser, metrics_port: bool = True) -> None:
    p.add_argument(
        "-n",
        "--namespace",
        dest="namespaces",
        action="append",
        default=[],
        help="namespace to watch (repeat for several; default: all namespaces)",
    )
    p.add_argument(
        "--embedder", choices=["semantic", "hashing", "openai"], help="embedder (default: semantic)"
    )
    p.add_argument("--hashing-dim", type=_number(1), help="dimension of the hashing embedder (default: 4096)")
    if metrics_port:
        p.add_argument(
            "--metrics-port",
            type=_port,
            help="port of /metrics and /healthz (the liveness probe), 0 for none (default: 9090)",
        )
    p.add_argument("--log-format", choices=["text", "json"], help="log format (default: text)")


def cmd_controller(args: argparse.Namespace) -> None:
    from blocklearn.runtime.kubeclient import keep_official_client_out

    keep_official_client_out()  # before kopf is imported
    from blocklearn.controller.run import run

    settings = _settings(args)
    if settings.metrics_port:  # else a taken port is a traceback from the server's task
        _require_free(args.command, "0.0.0.0", settings.metrics_port, "--metrics-port")
    logs.setup(settings.log_format)
    if args.liveness:
        logging.getLogger("blocklearn.controller").warning(
            "--liveness is ignored: /healthz is served with /metrics on --metrics-port (%s)",
            settings.metrics_port,
        )
    # kopf handles SIGINT and SIGTERM itself; a second handler would only race it.
    asyncio.run(run(settings))


def cmd_crds(args: argparse.Namespace) -> None:
    from blocklearn.resources.crds import all_crds, render

    if args.out is None:
        sys.stdout.write("---\n".join(render(c) for c in all_crds()))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for crd in all_crds():
        path = out / f"{crd['metadata']['name']}.yaml"
        path.write_text(render(crd))
        print(f"wrote {path}")


def cmd_openapi(args: argparse.Namespace) -> None:
    from blocklearn.search.openapi import render

    if args.out is None:
        sys.stdout.write(render())
        return
    Path(args.out).write_text(render())
    print(f"wrote {args.out}")


def cmd_dashboard(args: argparse.Namespace) -> None:
    import importlib.util

    if importlib.util.find_spec("grafana_foundation_sdk") is None:
        sys.exit("the dashboard is built with the dev extra: pip install 'blocklearn[dev]'")
    from blocklearn.devtools.dashboard import build, render

    text = render(build())
    if args.out is None:
        sys.stdout.write(text)
        return
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


def _require_dev_extra() -> None:
    """The local API needs kmock, which production installs leave out."""
    import importlib.util

    if importlib.util.find_spec("kmock") is None:
        sys.exit("the local Kubernetes API needs the dev extra: pip install 'blocklearn[dev]'")


def cmd_emulator(args: argparse.Namespace) -> None:
    _require_dev_extra()
    from blocklearn.devtools.emulator.journal import StateError
    from blocklearn.devtools.emulator.serve import serve

    _require_free(args.command, args.host, args.port, "--port")
    logs.setup(args.log_format or "text")
    crds = Path(args.crds) if args.crds else None
    kubeconfig = Path(args.kubeconfig) if args.kubeconfig else None
    persist = Path(args.persist) if args.persist else None
    try:
        _run_until_signal(lambda stop: serve(args.host, args.port, crds, kubeconfig, persist, stop))
    except StateError as exc:
        raise SystemExit(f"blocklearn emulator: {exc}") from None


def cmd_backfill(args: argparse.Namespace) -> None:
    import json

    from blocklearn.controller.backfill import backfill, parse_time
    from blocklearn.runtime.rest import Rest

    logs.setup("text")
    since = parse_time(args.since)  # the parser checked it

    async def main() -> Any:
        rest = Rest.from_kubeconfig(args.kubeconfig)
        try:
            return await backfill(rest, since, args.namespace)
        finally:
            await rest.close()

    report = asyncio.run(main())
    print(
        json.dumps(report.__dict__)
        if args.output == "json"
        else f"listed {report.listed} Blocks, {report.selected} changed since {args.since}: "
        f"{report.requested} reconciles requested, {report.gone} gone meanwhile, {report.failed} failed"
    )
    if report.failed:
        sys.exit(1)


def cmd_index(args: argparse.Namespace) -> None:
    from blocklearn.index.run import run

    settings = _settings(args)
    _require_free(args.command, args.host, args.port, "--port")
    if args.probe_port is not None:
        _require_free(args.command, "0.0.0.0", args.probe_port, "--probe-port")
    logs.setup(settings.log_format)
    _run_until_signal(
        lambda stop: run(settings, args.host, args.port, stop, args.probe_port, args.allow_unauthenticated)
    )


def cmd_search(args: argparse.Namespace) -> None:
    import json

    from blocklearn.client.terminal import format_table, search

    token = None if args.token_file else os.environ.get("BLOCKLEARN_TOKEN")
    namespace = None if args.all_namespaces else args.namespace
    result = search(
        args.url, args.query, args.k, namespace, token, distinct=not args.raw, token_file=args.token_file
    )
    dumped = result.model_dump(mode="json", by_alias=True)
    print(json.dumps(dumped, indent=2) if args.output == "json" else format_table(result))


def cmd_dev(args: argparse.Namespace) -> None:
    _require_dev_extra()
    from blocklearn.devtools.dev import Ports, run

    ports = Ports(args.api_port, args.index_port, args.metrics_port)
    for port, flag in zip(
        (ports.api, ports.index, ports.metrics), ("--api-port", "--index-port", "--metrics-port"), strict=True
    ):
        _require_free(args.command, "127.0.0.1", port, flag)
    sys.exit(run(Path(args.dir), ports, persist=not args.ephemeral))


def cmd_eval(args: argparse.Namespace) -> None:
    import importlib.util

    from blocklearn.devtools import evaluation as ev

    if importlib.util.find_spec("matplotlib") is None:  # found out only at the end, after the work
        sys.exit("blocklearn eval: the learning curve needs matplotlib: pip install 'blocklearn[eval]'")
    logs.setup("text")
    settings = _settings(args, fields=("hashing_dim",))  # its --embedder lists retrievers
    try:
        learn = ev.load_learn(Path(args.learn or ev.DEFAULT_LEARN), args.limit)
        queries = ev.load_queries(Path(args.queries or ev.DEFAULT_QUERIES), args.query_limit)
    except ValueError as exc:  # not JSON Lines of the expected records; UnicodeDecodeError too
        raise SystemExit(f"blocklearn eval: {exc}") from None
    curves = []
    if args.e2e:
        from blocklearn.devtools.evaluation_e2e import E2ERetriever

        retriever = E2ERetriever(settings.hashing_dim)
        try:
            curves.append(ev.evaluate(retriever, learn, queries, args.steps))
        finally:
            retriever.close()
    shared: list[Any] = []

    def semantic() -> Any:
        if not shared:
            from blocklearn.embed.semantic import SemanticEmbedder

            shared.append(ev.CachedEmbedder(SemanticEmbedder.from_settings(settings)))
        return shared[0]

    for name in [] if args.e2e else args.embedder:
        curves.append(ev.evaluate(_retriever(name, semantic), learn, queries, args.steps))
    bundled = "the bundled NL2Bash"  # its path depends on where blocklearn is installed
    meta = {
        "learn": args.learn or f"{bundled} learn.jsonl",
        "queries": args.queries or f"{bundled} queries-dev.jsonl",
        "learned": len(learn),
        "asked": len(queries),
        "steps": args.steps,
    }
    paths = ev.write_report(curves, Path(args.out), meta)
    print(Path(paths["markdown"]).read_text())
    print(f"wrote {paths['json']}, {paths['markdown']} and {paths['png']}")


def _retriever(name: str, semantic: Callable[[], Any]) -> Any:
    """The retriever of a curve; `semantic` builds the (shared, memoised) semantic embedder."""
    from blocklearn.devtools import evaluation as ev

    if name == "bm25":
        return ev.BM25Retriever()
    if name == "semantic":
        return ev.IndexRetriever("semantic (dense channel alone)", semantic(), text=False)
    if name == "hybrid":
        return ev.IndexRetriever("hybrid (semantic + lexical)", semantic())
    return ev.IndexRetriever("hashing (lexical channel alone)")


def cmd_model(args: argparse.Namespace) -> None:
    from blocklearn.embed import semantic

    logs.setup("text")
    settings = _settings(args, fields=())
    if args.cache_dir:
        settings.model_cache_dir = args.cache_dir
    directory = Path(settings.model_cache_dir) if settings.model_cache_dir else semantic.default_cache_dir()
    path = semantic.install(directory)
    embedder = semantic.SemanticEmbedder.from_settings(settings)
    [vector] = embedder.embed_sync(["list the pods in kube-system"])
    print(
        f"{embedder.model}: weights verified, model at {path}"
        f" ({path.stat().st_size} bytes), dim {vector.shape[0]}"
    )


def build_parser() -> _Parser:
    parser = _Parser(
        prog="blocklearn",
        description="An operator that makes an AI assistant learn from the cells people correct and run.",
    )
    parser.add_argument("--version", action="version", version=f"blocklearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "dev",
        help="run everything locally, no cluster: Kubernetes API emulator, controller and index",
        description="Start the local Kubernetes API (kmock), the controller and the index on 127.0.0.1. "
        "Writes a kubeconfig, logs and the objects under --dir; restarts a process that dies, with "
        "backoff; Ctrl-C stops everything.",
    )
    p.add_argument(
        "--dir", default=".blocklearn-dev", help="kubeconfig, logs and state (default: .blocklearn-dev)"
    )
    p.add_argument("--api-port", type=_port, default=8001, help="Kubernetes API port (default: 8001)")
    p.add_argument("--index-port", type=_port, default=8081, help="search API port (default: 8081)")
    p.add_argument(
        "--metrics-port",
        type=_port,
        default=9090,
        help="controller /metrics and /healthz port (default: 9090)",
    )
    p.add_argument(
        "--ephemeral",
        action="store_true",
        help="keep objects in memory only (default: in --dir, kept across restarts, even a kill -9)",
    )
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("controller", help="run the kopf operator: Blocks -> Examples -> embeddings")
    _add_common(p)
    # Before one server served /healthz and /metrics; accepted so that old manifests still start.
    p.add_argument("--liveness", type=_url, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_controller)

    p = sub.add_parser("index", help="run the index sidecar: watch Examples, serve nearest-neighbour search")
    _add_common(p, metrics_port=False)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8081, help="port of the search API and /metrics (default: 8081)"
    )
    p.add_argument(
        "--probe-port",
        type=_port,
        help="also serve /healthz, /readyz and /metrics (not search) on this port on every address,"
        " for the kubelet and Prometheus while search listens on 127.0.0.1",
    )
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve search on a non-loopback --host with no token required (not recommended)",
    )
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="find the past corrections nearest to a request")
    p.add_argument("query", help='the request, e.g. "list pods in kube-system"')
    p.add_argument("-k", type=_k, default=3, help="how many examples (default: 3)")
    p.add_argument("-n", "--namespace", default="default", help="namespace to search (default: default)")
    p.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="search every namespace (the index must allow cross-namespace search)",
    )
    p.add_argument(
        "--url", type=_url, default="http://127.0.0.1:8081", help="index URL (default: http://127.0.0.1:8081)"
    )
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p.add_argument(
        "--raw",
        action="store_true",
        help="the nearest examples as they are, even with the same answer (default: distinct answers)",
    )
    p.add_argument(
        "--token-file",
        help="file with a bearer token for the index: its shared token, or a ServiceAccount token"
        " (`kubectl create token SA`) if the index checks them (default: $BLOCKLEARN_TOKEN, if set)",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "eval",
        help="replay a learn file as Blocks and measure retrieval as examples accumulate",
        description="Replays LEARN (JSON Lines: id, doc, command; default the bundled NL2Bash) as "
        "corrections through the learning rule, embedder and index, in --steps chunks; after each step "
        "asks every query of QUERIES (id, query, answers; default NL2Bash's dev paraphrases) and records "
        "hit@1, hit@5 and MRR. Writes report.json, report.md and learning_curve.png to --out.",
    )
    p.add_argument(
        "--learn",
        help="JSON Lines of {id, doc, command} (default: NL2Bash's 10,624 commands, in the package)",
    )
    p.add_argument(
        "--queries",
        help="JSON Lines of {id, query, answers} (default: NL2Bash's 991 dev paraphrases, in the package)",
    )
    p.add_argument(
        "--embedder",
        nargs="+",
        default=["hashing", "bm25"],
        choices=["hashing", "bm25", "semantic", "hybrid"],
        help="retrievers to compare (default: hashing bm25): hashing is the index's lexical channel"
        " alone, semantic its dense channel alone, hybrid both fused (what the index serves with a"
        " semantic model), bm25 a lexical baseline",
    )
    p.add_argument("--hashing-dim", type=_number(1), help="BLOCKLEARN_HASHING_DIM of the --e2e processes")
    p.add_argument("--steps", type=_number(1), default=10, help="learning-curve points (default: 10)")
    p.add_argument("--limit", type=_number(1), help="learn only the first N records")
    p.add_argument("--query-limit", type=_number(1), help="ask only the first N queries")
    p.add_argument("--out", default="eval-out", help="report directory (default: eval-out)")
    p.add_argument(
        "--e2e",
        action="store_true",
        help="run through the real emulator, controller and index processes (hashing; use a smaller --limit)",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "model",
        help="verify the semantic model's weights and build its int8 model into the cache",
        description="Checks the pinned weights of all-MiniLM-L6-v2, builds the int8 ONNX model once and "
        "caches it with the tokenizer, all a start needs (the image runs this at build time, then drops "
        "the weights), then embeds one text.",
    )
    p.add_argument(
        "--cache-dir", help="cache directory (default: $BLOCKLEARN_MODEL_CACHE_DIR or ~/.cache/blocklearn)"
    )
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("crds", help="print the CustomResourceDefinitions generated from the models")
    p.add_argument("--out", help="write one file per CRD into this directory instead (e.g. crds/)")
    p.set_defaults(func=cmd_crds)

    p = sub.add_parser(
        "openapi", help="print the search API's OpenAPI 3.1 document, generated from its models"
    )
    p.add_argument("--out", help="write it to this file instead (e.g. docs/openapi.json)")
    p.set_defaults(func=cmd_openapi)

    p = sub.add_parser(
        "dashboard", help="print the chart's Grafana dashboard, built with Grafana's foundation SDK"
    )
    p.add_argument("--out", help="write it to this file instead (charts/blocklearn/files/dashboard.json)")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("backfill", help="re-reconcile every Block changed after a time")
    p.add_argument("--since", required=True, type=_since, help="RFC 3339 time, e.g. 2024-06-01T00:00:00Z")
    p.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    p.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG or in-cluster)")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    p.set_defaults(func=cmd_backfill)

    p = sub.add_parser("emulator", help="serve a local Kubernetes API (kmock) with the CRDs registered")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8443, help="port to listen on (default: 8443; 0 picks one)")
    p.add_argument("--crds", help="directory of CRD YAML files (default: the built-in CRDs)")
    p.add_argument("--kubeconfig", help="write a kubeconfig pointing at the emulator to this path")
    p.add_argument(
        "--persist",
        help="keep objects in this file and a .journal beside it, written as they change: they survive a"
        " restart, even a kill -9",
    )
    p.add_argument("--log-format", choices=["text", "json"])
    p.set_defaults(func=cmd_emulator)
    parser.commands = sub.choices
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except Exception as exc:
        message = _user_error(exc)
        if message is None:
            raise  # a bug: its traceback is what to report
        from blocklearn.printable import printable

        sys.exit(f"blocklearn {args.command}: {printable(message)}")


def _user_error(exc: Exception) -> str | None:
    """What to tell a person about an error their setup or input caused, in one line; None for a
    bug. Imports lazily: most commands never load the Kubernetes client."""
    from blocklearn.embed import ModelUnavailable

    if isinstance(exc, ModelUnavailable):  # a setup step is missing: the message says which
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):  # a binary or mis-encoded file (a kubeconfig, a token)
        return f"a file it read is not UTF-8 text ({exc.reason} at byte {exc.start}): is it the right file?"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return f"{exc}: choose another port"
    if isinstance(
        exc, FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError | NotADirectoryError
    ):
        return f"{exc.strerror}: {exc.filename}"
    from blocklearn.runtime.kubeclient import describe_error  # loads no client of its own

    return describe_error(exc)


if __name__ == "__main__":
    main()
