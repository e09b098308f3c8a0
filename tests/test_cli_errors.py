"""Every subcommand, given bad arguments or run without a cluster: one line that says what is wrong
and what to do, exit code 2 for a usage error and 1 for the rest, never a traceback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.processes import free_port

pytestmark = pytest.mark.e2e
SINCE = "2024-06-01T00:00:00Z"
LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # a daemon's log line, before its error

USAGE = [
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["search"], "the following arguments are required: query"),
    (["search", "pods", "-k", "0"], "argument -k: must be from 1 to 100, not 0"),
    (["search", "pods", "-k", "-1"], "argument -k: must be from 1 to 100, not -1"),
    (["search", "pods", "-k", "100000"], "argument -k: must be from 1 to 100, not 100000"),
    (["search", "pods", "-k", "three"], "argument -k: not a whole number: 'three'"),
    (["search", "pods", "--url", "127.0.0.1:8081"], "not an http(s) URL"),
    (["search", "pods", "-o", "yaml"], "argument -o/--output: invalid choice"),
    (["index", "--port", "70000"], "argument --port: must be from 0 to 65535, not 70000"),
    (["controller", "--embedder", "bert"], "argument --embedder: invalid choice"),
    (["controller", "--metrics-port", "x"], "argument --metrics-port: not a whole number"),
    (["controller", "--liveness", "http://0.0.0.0:port/healthz"], "argument --liveness: not a port number"),
    (["dev", "--api-port", "-5"], "argument --api-port: must be from 0 to 65535, not -5"),
    (["eval", "--steps", "0"], "argument --steps: must be at least 1, not 0"),
    (["backfill"], "the following arguments are required: --since"),
    (["backfill", "--since", "yesterday"], "'yesterday' is not a time; write it as RFC 3339"),
    (["backfill", "--since", "2024-06-01T00:00:00"], "has no time zone; write it as RFC 3339"),
    (["emulator", "--port", "many"], "argument --port: not a whole number"),
    (["crds", "--bogus"], "unrecognized arguments: --bogus"),
    (["openapi", "extra"], "unrecognized arguments: extra"),
    (["dashboard", "--bogus"], "unrecognized arguments: --bogus"),
    (["model", "--cache-dir"], "argument --cache-dir: expected one argument"),
]


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Files and ports the cases refer to: a port in use, one nobody listens on, broken files."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "garbage.jsonl").write_text("this is not json\n")
    (tmp / "a-file").write_text("")
    (tmp / "binary.kubeconfig").write_bytes(b"\xff\xfe\x00a\x00p\x00i\x00")
    unreachable = free_port()
    (tmp / "unreachable.kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        f"clusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{unreachable}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield {
            "tmp": str(tmp),
            "busy": str(busy.getsockname()[1]),
            "unreachable": f"http://127.0.0.1:{unreachable}",
        }


def environment(place: dict[str, str], **extra: str) -> dict[str, str]:
    """No cluster: no KUBECONFIG, a HOME without ~/.kube; the hashing embedder (no model to build)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith("BLOCKLEARN_")}
    return {**env, "HOME": place["tmp"], "BLOCKLEARN_EMBEDDER": "hashing", **extra}


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """The command, run where it can litter nothing (`dev` makes .blocklearn-dev in its directory)."""
    out = subprocess.run(
        [sys.executable, "-m", "blocklearn", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=env["HOME"],
    )
    return out.returncode, out.stdout + out.stderr


def assert_one_line(output: str, prefix: str, fragment: str) -> None:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip() and not LOG_RECORD.match(line)]
    assert len(lines) == 1, output
    assert lines[0].startswith(prefix) and fragment in lines[0], output


@pytest.mark.parametrize(("argv", "fragment"), USAGE, ids=[" ".join(a) or "(none)" for a, _ in USAGE])
def test_a_usage_error_is_one_line_with_where_to_look_and_exit_code_2(
    place: dict[str, str], argv: list[str], fragment: str
) -> None:
    code, output = run(argv, environment(place))
    assert code == 2, output
    command = f"blocklearn {argv[0]}" if argv and argv[0] != "bogus" else "blocklearn"
    assert_one_line(output, f"{command}: ", fragment)
    assert output.rstrip().endswith(f"(see {command} --help)")


CASES = [
    (
        ["search", "pods", "--url", "{unreachable}"],
        {},
        "cannot reach the index at {unreachable}: Connection refused",
    ),
    (["search", "pods", "--token-file", "{tmp}/missing"], {}, "No such file or directory: {tmp}/missing"),
    (["backfill", "--since", SINCE], {}, "no Kubernetes configuration"),
    (
        ["backfill", "--since", SINCE, "--kubeconfig", "{tmp}/missing"],
        {},
        "no such kubeconfig file: {tmp}/missing",
    ),
    (
        ["backfill", "--since", SINCE],
        {"KUBECONFIG": "{tmp}/unreachable.kubeconfig"},
        "cannot reach the Kubernetes API at {unreachable} (Connection refused)",
    ),
    (["controller", "--metrics-port", "0"], {}, "no Kubernetes configuration"),
    (["index", "--port", "0"], {}, "no Kubernetes configuration"),
    (["controller"], {"BLOCKLEARN_RESYNC_SECONDS": "soon"}, "invalid setting BLOCKLEARN_RESYNC_SECONDS"),
    (["index"], {"BLOCKLEARN_NAMESPACES": "team-a,team-b"}, "list settings are JSON"),
    (
        ["controller", "--metrics-port", "{busy}"],
        {},
        "cannot listen on port {busy} (Address already in use): move it with --metrics-port",
    ),
    (
        ["dev", "--api-port", "{busy}"],
        {},
        "cannot listen on port {busy} (Address already in use): move it with --api-port",
    ),
    (
        ["emulator", "--port", "{busy}"],
        {},
        "cannot listen on port {busy} (Address already in use): move it with --port",
    ),
    (
        ["index", "--port", "{busy}"],
        {},
        "cannot listen on port {busy} (Address already in use): move it with --port",
    ),
    (["eval", "--learn", "{tmp}/missing", "--queries", "{tmp}/missing"], {}, "No such file or directory"),
    (
        ["eval", "--learn", "{tmp}/garbage.jsonl", "--queries", "{tmp}/garbage.jsonl"],
        {},
        "garbage.jsonl:1: not JSON",
    ),
    (
        ["backfill", "--since", SINCE, "--kubeconfig", "{tmp}/binary.kubeconfig"],
        {},
        "a file it read is not UTF-8 text (invalid start byte at byte 0)",
    ),
    (
        ["search", "x" * 5000, "--url", "{unreachable}"],
        {},
        "not a valid search: query.text: String should have at most 4096 characters",
    ),
    (["crds", "--out", "{tmp}/a-file"], {}, "File exists: {tmp}/a-file"),
    (["openapi", "--out", "{tmp}/missing/openapi.json"], {}, "No such file or directory"),
    (["dashboard", "--out", "{tmp}/missing/dashboard.json"], {}, "No such file or directory"),
]


@pytest.mark.parametrize(("argv", "env", "fragment"), CASES, ids=[" ".join(a)[:80] for a, _, _ in CASES])
def test_without_a_cluster_or_with_bad_files_an_error_is_one_line_and_exit_code_1(
    place: dict[str, str], argv: list[str], env: dict[str, str], fragment: str
) -> None:
    argv = [a.format(**place) for a in argv]
    env = {k: v.format(**place) for k, v in env.items()}
    code, output = run(argv, environment(place, **env))
    assert code == 1, output
    assert_one_line(output, f"blocklearn {argv[0]}: ", fragment.format(**place))


def test_a_query_that_is_not_utf8_is_one_line(place: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "blocklearn", "search", b"list \xff pods", "--url", place["unreachable"]],
        capture_output=True,
        text=True,
        env=environment(place),
        timeout=120,
        cwd=place["tmp"],
    )
    assert out.returncode == 1, out.stderr
    assert_one_line(out.stdout + out.stderr, "blocklearn search: not a valid search: query.text:", "unicode")


SECRET = "s3cret-do-not-print"
BAD_TOKENS = {
    "line break": (SECRET + "\nsecond-line").encode(),
    "control character": (SECRET + "\x1b[31m").encode(),
    "non-ASCII": (SECRET + "é").encode(),
    "binary": b"\xff\xfe" + SECRET.encode(),
}


# An environment variable cannot hold the binary one: the shell decodes it.
SOURCES = [(kind, "--token-file") for kind in BAD_TOKENS] + [
    (kind, "BLOCKLEARN_TOKEN") for kind in BAD_TOKENS if kind != "binary"
]


@pytest.mark.parametrize(("kind", "source"), SOURCES, ids=[f"{k} in {s}" for k, s in SOURCES])
def test_a_token_that_cannot_be_sent_is_refused_in_one_line_that_never_repeats_it(
    place: dict[str, str], kind: str, source: str
) -> None:
    token = BAD_TOKENS[kind]
    argv = ["search", "pods", "--url", place["unreachable"]]
    why = "holds a line break, a control character or a non-ASCII character"
    if source == "--token-file":
        path = os.path.join(place["tmp"], "token")
        with open(path, "wb") as f:
            f.write(token)
        code, output = run([*argv, "--token-file", path], environment(place))
        why = f"the token file {path} is not UTF-8 text" if kind == "binary" else f"the token in {path} {why}"
    else:
        code, output = run(argv, environment(place, BLOCKLEARN_TOKEN=token.decode()))
        why = f"the token {why}"
    assert code == 1, output
    assert_one_line(output, "blocklearn search: ", why)
    assert SECRET not in output and "s3cret" not in output


def test_every_subcommand_is_covered() -> None:
    from blocklearn.cli import build_parser

    commands = set(build_parser().commands)
    covered = {a[0] for a, _ in USAGE if a and a[0] != "bogus"} | {a[0] for a, _, _ in CASES}
    assert commands == covered, commands ^ covered
