"""The real index process under whatever a client sends: arbitrary bodies, headers, sizes and arrival
patterns. Never a 5xx, the server stays up, and every valid request of every allowed size succeeds,
also when it arrives in small chunks with pauses, as from a slow client."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import unicodedata
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import blocklearn
from blocklearn.index.core import MAX_K
from blocklearn.resources.models import MAX_CELL_CHARS, MAX_CELLS, MAX_OUTPUT_CHARS, MAX_OUTPUTS
from blocklearn.search.api import MAX_BODY_BYTES
from blocklearn.search.schema import SearchResponse
from tests.conftest import block_body
from tests.stack import Stack

pytestmark = pytest.mark.e2e
ENV = {"BLOCKLEARN_HASHING_DIM": "512"}
BLOCKS = "/apis/blocklearn.dev/v1alpha1/namespaces/{ns}/blocks"
# Learned text that would act on a terminal: colour, BEL, a right-to-left override, a title change.
EVIL = "\x1b[31mred\x1b[0m \x07 \u202eevil"
EVIL_ANSWER = "echo \x1b]0;owned\x07 \u202egnp"
TOKEN = "s3cret-token"
INDEXES = ("index", "index-auth")  # open, and with authentication
# Our own frames in a traceback, wherever the checkout is (its path may hold "blocklearn" too).
OUR_FRAMES = f'File "{Path(blocklearn.__file__).parent}{os.sep}'


def call(url: str, body: object = None, method: str = "POST") -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait(check, what: str, stack: Stack, timeout: float = 90):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{stack.logs()}")
        time.sleep(0.2)
    return result


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The emulator, the controller and the index, with four Examples in default (one of them
    with text that would repaint a terminal), one in team-a."""
    with Stack.started(tmp_path_factory.mktemp("hostile"), ENV) as stack:
        stack.wait_ready(stack.controller(), stack.index())
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
        call(f"{stack.api_url}/api/v1/namespaces", namespace)  # the Block below is the check
        docs = {"pods": "list every pod", "disk": "list the disk usage", "logs": "list the logs of web"}
        for name, doc in docs.items():
            body = block_body(name, executed=f"kubectl {name} -A", doc=doc)
            assert call(stack.api_url + BLOCKS.format(ns="default"), body)[0] == 201
        body = block_body("evil", executed=EVIL_ANSWER, doc=f"list the {EVIL} pods")
        assert call(stack.api_url + BLOCKS.format(ns="default"), body)[0] == 201
        body = block_body("team-pods", executed="kubectl get po -A", doc="list every pod of team a")
        assert call(stack.api_url + BLOCKS.format(ns="team-a"), body)[0] == 201

        def learned() -> bool:
            status, found = call(
                f"{stack.child('index').url}/v1/search", {"query": "list", "k": 10, "namespace": "default"}
            )
            return status == 200 and len(found["results"]) == 4

        wait(learned, "four Examples searchable", stack)
        # A second index that requires a bearer token (the shared one, or a ServiceAccount's): what
        # a client sends must also reach authentication without a 5xx.
        token = stack.directory / "token"
        token.write_text(TOKEN)
        auth = {"BLOCKLEARN_INDEX_TOKEN_FILE": str(token), "BLOCKLEARN_INDEX_TOKEN_REVIEW": "true"}
        stack.wait_ready(stack.index("index-auth", env=auth))
        yield stack


@dataclass
class Sent:
    """One request as a client puts it on the wire."""

    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    chunk: int = 1 << 20  # bytes per write
    pause: float = 0.0  # seconds between writes
    chunked: bool = False  # Transfer-Encoding: chunked instead of Content-Length
    length: int | None = None  # a Content-Length that lies (shorter or longer than the body)


def send(port: int, sent: Sent) -> tuple[int | None, bytes]:
    """Status and body of the answer; None when the server closed the connection without one (only
    allowed when the framing itself is broken: a Content-Length that lies)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest("POST", "/v1/search", skip_accept_encoding=True)
        for name, value in sent.headers.items():
            conn.putheader(name, value)
        if sent.chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        else:
            conn.putheader("Content-Length", str(len(sent.body) if sent.length is None else sent.length))
        conn.endheaders()
        try:
            for start in range(0, len(sent.body), sent.chunk):
                piece = sent.body[start : start + sent.chunk]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece) if sent.chunked else piece)
                if sent.pause:
                    time.sleep(sent.pause)
            if sent.chunked:
                conn.send(b"0\r\n\r\n")
            if sent.length is not None and sent.length > len(sent.body):
                conn.sock.shutdown(socket.SHUT_WR)  # the rest never comes
        except OSError:
            pass  # the server answered early (413) and stopped reading: its answer is still there
        try:
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            return None, b""
    finally:
        conn.close()


def alive(stack: Stack, name: str = "index") -> bool:
    with urllib.request.urlopen(f"{stack.child(name).url}/healthz", timeout=10) as resp:
        return resp.status == 200


# -- what a valid client sends: every size the schema allows ---------------------------------------

# Sizes are drawn as numbers and the text repeated to them: hypothesis draws at most a few KB itself.
alphabets = st.sampled_from(["list pods ", "é ünïcode ", "\U0001f600 ", "<&>\t\n", "\x1b[31m \u202e "])


@st.composite
def texts(draw: st.DrawFn, max_chars: int) -> str:
    seed = draw(alphabets)
    size = draw(st.one_of(st.integers(1, max_chars), st.just(max_chars)))
    return (seed * (size // len(seed) + 1))[:size]


@st.composite
def valid_requests(draw: st.DrawFn) -> dict:
    if draw(st.booleans()):
        query: object = "list " + draw(texts(MAX_CELL_CHARS - 5))
    else:
        cell = {
            "kind": draw(st.sampled_from(["markup", "code"])),
            "language": "bash",
            "contents": draw(texts(MAX_CELL_CHARS)),
            "outputs": [draw(texts(MAX_OUTPUT_CHARS))] * draw(st.integers(0, MAX_OUTPUTS)),
        }
        query = {"cells": [cell] * draw(st.one_of(st.integers(1, MAX_CELLS), st.just(MAX_CELLS)))}
    body: dict = {"query": query, "namespace": "default"}
    if draw(st.booleans()):
        body["k"] = draw(st.integers(1, MAX_K))
    if draw(st.booleans()):
        body["distinct"] = draw(st.booleans())
    if draw(st.booleans()):
        body["minScore"] = draw(st.floats(-1, 1))
    return body


@st.composite
def slow(draw: st.DrawFn, body: bytes) -> Sent:
    """A body in small writes with pauses; at most 40 writes, so that a test takes seconds."""
    chunk = max(draw(st.integers(1, 64 * 1024)), -(-len(body) // 40))
    return Sent(
        body,
        {"Content-Type": draw(st.sampled_from(["application/json", "application/json; charset=utf-8"]))},
        chunk=chunk,
        pause=draw(st.sampled_from([0.0, 0.001, 0.02])),
        chunked=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_valid_requests_of_every_allowed_size_succeed_however_slowly_they_arrive(
    stack: Stack, data: st.DataObject
) -> None:
    request = data.draw(valid_requests())
    body = json.dumps(request, ensure_ascii=data.draw(st.booleans())).encode()
    assert len(body) <= MAX_BODY_BYTES
    status, answer = send(stack.child("index").port, data.draw(slow(body)))
    assert status == 200, answer[:300]
    SearchResponse.model_validate_json(answer)


# -- what a careless or hostile client sends ---------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=latin-1",
            "multipart/form-data; boundary=x",
            "",
            "application/*",
            "json",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request with one field replaced by anything, or one field added."""
    request = draw(valid_requests())
    key = draw(st.sampled_from(["query", "k", "namespace", "distinct", "minScore", "extra"]))
    request[key] = draw(json_values)
    return json.dumps(request).encode()


bodies = st.one_of(
    st.binary(max_size=4096),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated(),
    st.integers(1, 300_000).map(lambda depth: b'{"query": ' + b"[" * depth + b"]" * depth + b"}"),
    st.text(max_size=200).map(lambda t: json.dumps({"query": t, "namespace": "default"}).encode()),
    st.sampled_from([b'{"query": "a\\u0000b", "namespace": "default"}', b'{"query": "\\udfff"}']),
)
extra_headers = st.dictionaries(
    st.sampled_from(
        ["Authorization", "Accept", "Content-Encoding", "Accept-Charset", "X-Forwarded-For", "Expect"]
    ),
    st.sampled_from(
        [
            "Bearer x",
            f"Bearer {TOKEN}",
            "Bearer \xff",  # http.client sends it as the byte 0xff
            "bearer \u00e9t\u00e9",
            "Bearer a\x7fb",
            "gzip",
            "deflate",
            "br",
            "*/*",
            "100-continue",
            "\u00e9",
            "a" * 8000,
        ]
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, ctype=content_types, headers=extra_headers, data=st.data())
def test_anything_a_client_sends_gets_a_4xx_at_worst_and_the_server_stays_up(
    stack: Stack, body: bytes, ctype: str, headers: dict[str, str], data: st.DataObject
) -> None:
    sent = data.draw(slow(body))
    sent.headers = {"Content-Type": ctype, **headers}
    if data.draw(st.booleans()):
        sent.chunked, sent.length = False, data.draw(st.integers(0, len(body) + 100))
    index = stack.child(data.draw(st.sampled_from(INDEXES)))
    status, answer = send(index.port, sent)
    assert status is None or status < 500, answer[:300]
    lying = sent.length is not None and sent.length != len(body)
    assert status is not None or lying, "no answer to a well-framed request"
    if status == 200:
        SearchResponse.model_validate_json(answer)
    assert alive(stack, index.name)


# Sent as latin-1, so these are the bytes on the wire. (Control characters never reach the
# handler: aiohttp's parser answers 400 to them.)
@pytest.mark.parametrize("token", ["\xff", "\xe9t\xe9", "\xc3\xa9"], ids=["0xff", "latin-1", "utf-8"])
def test_a_token_that_is_not_printable_ascii_is_refused_with_401(stack: Stack, token: str) -> None:
    body = json.dumps({"query": "list every pod", "namespace": "default"}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    status, answer = send(stack.child("index-auth").port, Sent(body, headers))
    assert status == 401, answer[:300]
    headers["Authorization"] = f"Bearer {TOKEN}"
    assert send(stack.child("index-auth").port, Sent(body, headers))[0] == 200


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(over=st.integers(1, 200_000), chunk=st.sampled_from([4096, 65536, 1 << 20]), chunked=st.booleans())
def test_a_body_over_the_limit_is_413_however_it_arrives(
    stack: Stack, over: int, chunk: int, chunked: bool
) -> None:
    body = json.dumps({"query": "x" * (MAX_BODY_BYTES + over), "namespace": "default"}).encode()
    status, answer = send(stack.child("index").port, Sent(body, chunk=chunk, chunked=chunked))
    assert status == 413, answer[:300]
    assert b"over" in answer


def test_no_request_raised_inside_the_search_handler(stack: Stack) -> None:
    # Run after the tests above. An exception out of a handler is logged by aiohttp as "Error
    # handling request" with the handler's frames (and answered 500, when the client is still there).
    # aiohttp also logs malformed HTTP (bad framing, an unknown Content-Encoding), with tracebacks of
    # its own parser, and its draining of a broken body after our 400; those are not ours.
    for name in INDEXES:
        log = stack.child(name).log.read_text(errors="replace")
        records = re.split(r"\n(?=\d{4}-\d\d-\d\d )", log)
        ours = [r for r in records if "Error handling request" in r and OUR_FRAMES in r]
        assert not ours, ours[0][-3000:]


def blocklearn_search(stack: Stack, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "blocklearn", "search", *args, "--url", stack.child("index").url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_footer_counts_only_the_namespace_searched(stack: Stack) -> None:
    def footer(*args: str) -> str:
        return blocklearn_search(stack, "list every pod", *args).splitlines()[-1]

    assert wait(lambda: footer("-n", "team-a").startswith("(1 of 1 examples"), "team-a's example", stack)
    assert re.match(r"\(3 of 4 examples", footer())  # default's four, not the index's five


def test_learned_control_characters_are_shown_escaped_and_kept_exact_in_json(stack: Stack) -> None:
    table = blocklearn_search(stack, "list the red evil pods", "-k", "5")
    acted_on = [c for c in table if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")]
    assert not acted_on, acted_on
    assert "\\x1b]0;owned\\x07 \\u202egnp" in table  # the answer, shown for what it is
    found = json.loads(blocklearn_search(stack, "list the red evil pods", "-k", "5", "-o", "json"))
    answers = [r["answer"][0]["contents"] for r in found["results"]]
    assert EVIL_ANSWER in answers  # -o json keeps the exact text (JSON escapes it)
