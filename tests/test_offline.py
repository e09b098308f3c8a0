"""No outbound connection at run time: the default stack (semantic embedder) in a network namespace of
its own, with every connect(), sendto() and sendmsg() of every process traced by strace.

The namespace has only loopback, so nothing could leave it anyway; the trace shows whether anything
tried, including native code (onnxruntime, tokenizers) that a patched Python socket would not see.
The control run shows the check fails for code that reaches for a model hub."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
_ADDRESS = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def outbound(trace: str) -> list[str]:
    """Traced calls that address anything but this machine (loopback, or the unspecified address)."""
    found = []
    for line in trace.splitlines():
        for v4, v6 in _ADDRESS.findall(line):
            address = ipaddress.ip_address(v4 or v6)
            mapped = getattr(address, "ipv4_mapped", None)
            local = (
                address.is_loopback or address.is_unspecified or (mapped is not None and mapped.is_loopback)
            )
            if not local:
                found.append(line.strip())
    return found


def in_namespace(tmp_path: Path, *argv: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run argv in a new network namespace (loopback up, nothing else) under strace -f."""
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here (needs root or user namespaces)")
    log = tmp_path / "trace.log"
    script = f'ip link set lo up && exec strace -f -qq -e trace=connect,sendto,sendmsg -o "{log}" "$@"'
    # No hub or onnxruntime settings (pytest itself imported blocklearn.embed, which set one), no cached
    # model: the run must find everything on disk, and opt out of telemetry, by itself.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BLOCKLEARN_", "HF_", "TRANSFORMERS_", "ORT_"))
    }
    env["BLOCKLEARN_MODEL_CACHE_DIR"] = str(tmp_path / "model-cache")
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    return proc, log.read_text() if log.exists() else ""


def test_importing_the_embedders_opts_out_of_onnxruntime_telemetry_before_onnxruntime_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    code = (
        "import sys, blocklearn.embed as e, os\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "import blocklearn.embed.semantic\n"
        "print(os.environ['ORT_DISABLE_TELEMETRY'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "1"


def test_the_check_sees_native_and_python_lookups() -> None:
    trace = (
        '12 connect(3, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16)'
        " = -1 ENETUNREACH\n"
        "13 connect(5, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6,"
        ' "2600:1f18::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH\n'
        '14 connect(6, {sa_family=AF_INET, sin_port=htons(8081), sin_addr=inet_addr("127.0.0.1")}, 16) = 0\n'
        "15 connect(7, {sa_family=AF_INET6, sin6_port=htons(8081), sin6_flowinfo=htonl(0),"
        ' inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0\n'
        '16 connect(8, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT\n'
    )
    assert [line.split()[0] for line in outbound(trace)] == ["12", "13"]


@pytest.mark.needs_tools("strace")
def test_a_model_hub_lookup_is_caught(tmp_path: Path) -> None:
    """The control: a process that resolves a hub's name is reported (in the namespace, it cannot)."""
    code = "import socket\ntry:\n    socket.getaddrinfo('huggingface.co', 443)\nexcept OSError:\n    pass\n"
    proc, trace = in_namespace(tmp_path, sys.executable, "-c", code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert outbound(trace), trace


@pytest.mark.slow
@pytest.mark.needs_tools("strace", "weights")
def test_the_default_stack_learns_and_answers_without_any_outbound_connection(tmp_path: Path) -> None:
    proc, trace = in_namespace(
        tmp_path, sys.executable, "-m", "tests.offline_stack", str(tmp_path / "dev"), timeout=400
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (tmp_path / "dev").glob("*.log"))
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n{logs}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["model"].startswith("semantic-all-minilm-l6-v2")
    assert result["answer"] == "tar czf config.tgz config/"
    assert "connect(" in trace  # the trace did record the stack's own loopback calls
    assert outbound(trace) == []
    # The model was built inside the namespace, from the installed weights alone.
    assert list((tmp_path / "model-cache").glob("*.onnx"))
