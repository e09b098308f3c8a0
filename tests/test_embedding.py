import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocklearn.embed import Embedder
from blocklearn.embed.batcher import EmbedBatcher
from blocklearn.embed.codec import decode, encode, text_hash
from blocklearn.embed.hashing import HashingEmbedder
from blocklearn.embed.text import MAX_QUERY_CHARS, query_cells, query_text
from blocklearn.resources.models import Cell


def test_codec_round_trips_little_endian_float32() -> None:
    v = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    data = encode(v)
    assert np.array_equal(decode(data, 384), v)
    assert np.frombuffer(__import__("base64").b64decode(data), dtype="<f4")[0] == v[0]
    with pytest.raises(ValueError, match="dimension 384, expected 8"):
        decode(data, 8)
    with pytest.raises(ValueError):
        decode("not base64!!")


def test_codec_stores_float16_in_half_the_bytes_and_reads_both_formats_by_length() -> None:
    v = np.random.default_rng(1).standard_normal(384).astype(np.float32)
    v /= np.linalg.norm(v)
    half, full = encode(v, "float16"), encode(v)
    assert (
        len(__import__("base64").b64decode(half)) == 768 and len(__import__("base64").b64decode(full)) == 1536
    )
    decoded = decode(half, 384)
    assert decoded.dtype == np.float32 and decoded.shape == (384,)
    assert np.array_equal(decoded, v.astype(np.float16).astype(np.float32))
    assert abs(float(decoded @ v) - 1.0) < 1e-3  # a cosine moves by far less than neighbours differ
    assert np.array_equal(decode(full, 384), v)  # an Example stored before the switch still reads
    with pytest.raises(ValueError, match="dimension"):
        decode(half, 100)


def test_text_hash_changes_with_text_and_model() -> None:
    assert text_hash("a", "m1") == text_hash("a", "m1")
    assert text_hash("a", "m1") != text_hash("b", "m1")
    assert text_hash("a", "m1") != text_hash("a", "m2")


def test_query_walks_back_over_markup_from_the_last_cell() -> None:
    cells = [
        Cell(kind="markup", contents="old context"),
        Cell(kind="code", language="bash", contents="echo old"),
        Cell(kind="markup", contents="# Debugging"),
        Cell(kind="markup", contents="why is my pod pending?"),
    ]
    text, truncated = query_text(cells)
    assert text == "# Debugging\n\nwhy is my pod pending?"
    assert not truncated
    with_code_last = [*cells, Cell(kind="code", language="bash", contents="kubectl describe pod x")]
    text, _ = query_text(with_code_last)
    assert text.endswith("```bash\nkubectl describe pod x\n```")
    assert "echo old" not in text


def test_over_long_queries_keep_their_end_and_say_so() -> None:
    # Markup cells in a row are all part of the query; each within the CRD's cap on a cell.
    cells = [Cell(kind="markup", contents="x" * 4000) for _ in range(3)]
    cells.append(Cell(kind="markup", contents="x" * 4000 + " the request"))
    text, truncated = query_text(cells)
    assert truncated and len(text) == MAX_QUERY_CHARS and text.endswith("the request")


_texts = st.text(alphabet=st.sampled_from("ab \n\t`#xé"), max_size=60)
_cells = st.builds(
    Cell,
    kind=st.sampled_from(["markup", "code"]),
    language=st.sampled_from(["", "bash"]),
    contents=_texts,
    outputs=st.lists(_texts, max_size=2),
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(_cells, max_size=8), st.integers(min_value=1, max_value=120))
def test_the_cells_an_example_keeps_render_exactly_the_text_that_is_embedded(
    cells: list[Cell], limit: int
) -> None:
    """An Example keeps only the window of cells the query renders, without outputs, cut where the
    text is cut: the embedded text (and whether it was truncated) is the same by construction, so
    the smaller Example cannot change retrieval. Small limits put the cut everywhere: in a fence, a
    separator, on blanks."""
    kept = query_cells(cells, limit)
    assert query_text(kept, limit) == query_text(cells, limit)
    assert all(not c.outputs for c in kept)
    assert sum(len(c.contents) for c in kept) <= sum(len(c.contents) for c in cells)


def test_a_notebook_context_keeps_its_last_cells_and_no_outputs() -> None:
    cells = [
        Cell(kind="markup", contents="# Debugging"),
        Cell(kind="code", language="bash", contents="kubectl get pods", outputs=["web-0 Pending"]),
        Cell(kind="markup", contents="   "),
        Cell(kind="markup", contents="why is web-0 pending?"),
    ]
    assert query_cells(cells) == [Cell(kind="markup", contents="why is web-0 pending?")]
    long = [Cell(kind="markup", contents="a" * 4096), Cell(kind="markup", contents="b" * 4000)]
    kept = query_cells(long)
    assert [len(c.contents) for c in kept] == [1, 4000]  # one character of the first: still cut there
    assert query_text(kept) == query_text(long) and query_text(kept)[1]


def test_hashing_embedder_is_deterministic_unit_length_and_lexical() -> None:
    e = HashingEmbedder(512)
    assert isinstance(e, Embedder)
    a, b, c, empty = e.embed_sync(
        ["list pods in a namespace", "list the pods of a namespace", "compress a tar file", ""]
    )
    assert a.dtype == np.float32 and a.shape == (512,)
    assert np.isclose(np.linalg.norm(a), 1.0)
    assert np.array_equal(a, HashingEmbedder(512).embed_sync(["list pods in a namespace"])[0])
    assert float(a @ b) > float(a @ c) + 0.2
    assert not empty.any()
    assert e.model == "hashing-v1-d512" != HashingEmbedder(1024).model


class CountingEmbedder:
    model = "count"
    dim = 2

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.fail = False

    async def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        if self.fail:
            raise RuntimeError("down")
        return np.array([[len(t), 1] for t in texts], dtype=np.float32)


async def test_batcher_groups_concurrent_requests_and_routes_results() -> None:
    inner = CountingEmbedder()
    batcher = EmbedBatcher(inner, max_batch=4, wait=0.01)
    results = await asyncio.gather(*(batcher.embed("x" * i) for i in range(10)))
    assert [int(r[0]) for r in results] == list(range(10))
    assert sum(inner.batches) == 10 and max(inner.batches) <= 4 and len(inner.batches) == 3


async def test_batcher_gives_every_waiter_the_failure() -> None:
    inner = CountingEmbedder()
    inner.fail = True
    batcher = EmbedBatcher(inner, max_batch=8, wait=0.0)
    outcomes = await asyncio.gather(*(batcher.embed("a") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
