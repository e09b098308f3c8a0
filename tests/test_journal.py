"""The emulator's journal: every acknowledged change survives the process dying without a stop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import kmock
import pytest

from blocklearn.devtools.emulator import journal as journal_module
from blocklearn.devtools.emulator.api import Emulator
from blocklearn.devtools.emulator.journal import Journal, StateError
from blocklearn.resources.crds import all_crds
from tests.conftest import Api, block_body

BLOCKS = "blocklearn.dev/v1alpha1/blocks"


@contextlib.asynccontextmanager
async def served(state: Path) -> AsyncIterator[tuple[Emulator, Api, Journal]]:
    """An emulator restored from `state`, journaling into it. Leaving it does not close the journal:
    the process "dies" (a test closes it when it means a clean stop)."""
    emulator = Emulator()
    emulator.register_crds(all_crds())
    journal = Journal(state)
    journal.open(emulator)
    async with emulator, kmock.Server(emulator), aiohttp.ClientSession() as session:
        yield emulator, Api(session, str(emulator.url).rstrip("/")), journal
        emulator.drop_watches()


def names(emulator: Emulator) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in emulator.objects_of(BLOCKS)}


async def test_what_was_acknowledged_survives_a_kill(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with served(state) as (emulator, api, _):
        for name in ("a", "b", "c"):
            assert (await api.call("POST", api.path("blocks"), block_body(name)))[0] == 201
        await api.call("PATCH", api.path("blocks", name="a"), {"spec": {"exitCode": 3}})
        await api.call("PATCH", api.path("blocks", name="a", sub="status"), {"status": {"exampleRef": "x"}})
        await api.call("DELETE", api.path("blocks", name="b"))
        before = names(emulator)
        _, listed = await api.call("GET", api.path("blocks"))
        last_rv = int(listed["metadata"]["resourceVersion"])
    assert state.with_suffix(".journal").stat().st_size != 0  # the changes are in the journal

    async with served(state) as (restored, api, _):
        assert names(restored) == before  # metadata, spec and status exactly
        assert set(before) == {"a", "c"} and before["a"]["status"]["exampleRef"] == "x"
        _, listed = await api.call("GET", api.path("blocks"))
        assert int(listed["metadata"]["resourceVersion"]) >= last_rv  # versions continue
        code, created = await api.call("POST", api.path("blocks"), block_body("d"))
        assert code == 201 and int(created["metadata"]["resourceVersion"]) > last_rv
        # A watch from before the restart must relist, as after an API server restart.
        url = api.path("blocks") + f"?watch=true&resourceVersion={last_rv - 1}"
        async with api.session.get(url) as resp:
            event = await resp.json(content_type=None)
        assert event["type"] == "ERROR" and event["object"]["code"] == 410


async def test_a_torn_last_line_is_dropped_and_the_rest_replayed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with served(state) as (_emulator, api, _):
        await api.call("POST", api.path("blocks"), block_body("a"))
        await api.call("POST", api.path("blocks"), block_body("b"))
    with state.with_suffix(".journal").open("ab") as journal:
        journal.write(b'{"key": ["blocklearn.dev/v1alpha1/blocks", "default", "c"], "obj')  # died mid-write
    async with served(state) as (restored, _, _):
        assert set(names(restored)) == {"a", "b"}


async def test_the_journal_is_compacted_and_a_clean_stop_leaves_only_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_module, "MIN_COMPACT_CHANGES", 5)
    state = tmp_path / "state.json"
    async with served(state) as (_emulator, api, _):
        for i in range(3):
            await api.call("POST", api.path("blocks"), block_body(f"b{i}"))
        for code in range(1, 7):  # 18 changes to 5 objects (3 Blocks, 2 CRDs)
            for i in range(3):
                await api.call("PATCH", api.path("blocks", name=f"b{i}"), {"spec": {"exitCode": code}})
        lines = state.with_suffix(".journal").read_bytes().count(b"\n")
        assert lines <= 5  # compacted on the way: replay stays proportional to the state
    async with served(state) as (restored, _, journal):
        assert {n: b["spec"]["exitCode"] for n, b in names(restored).items()} == {"b0": 6, "b1": 6, "b2": 6}
        journal.close(restored)
    assert state.with_suffix(".journal").read_bytes() == b""
    async with served(state) as (again, _, _):
        assert len(names(again)) == 3


async def test_changes_already_in_the_snapshot_are_not_replayed_twice(tmp_path: Path) -> None:
    # A crash between the two steps of a compaction: the new snapshot, and the old journal.
    state = tmp_path / "state.json"
    async with served(state) as (_emulator, api, _):
        await api.call("POST", api.path("blocks"), block_body("a"))
        await api.call("DELETE", api.path("blocks", name="a"))
        await api.call("POST", api.path("blocks"), block_body("a"))
        old_journal = state.with_suffix(".journal").read_bytes()
    async with served(state) as (restored, _, _):  # compacts at open
        expected = names(restored)
    state.with_suffix(".journal").write_bytes(old_journal)
    async with served(state) as (again, _, _):
        assert names(again) == expected and set(expected) == {"a"}


def test_a_state_file_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("garbage")
    with pytest.raises(StateError, match=r"state.json is not a saved emulator state .*: move it away"):
        Journal(state).open(Emulator())
