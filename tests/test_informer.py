"""The runtime's informer and its cache, without a server: what a relist reports, what the cache keeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from blocklearn.runtime.informer import Informer, Store
from blocklearn.runtime.objects import Obj
from blocklearn.runtime.rest import ApiError


def obj(name: str, rv: int, ns: str = "one", **spec: Any) -> Obj:
    return {"metadata": {"namespace": ns, "name": name, "resourceVersion": str(rv)}, "spec": spec}


class Lister:
    """The part of Rest a relist uses: pages of a list, and the list's resourceVersion."""

    def __init__(self) -> None:
        self.items: dict[str, list[Obj]] = {}
        self.version = "100"
        self.lists = 0

    async def pages(self, path: str, limit: int = 500) -> AsyncIterator[tuple[list[Obj], str]]:
        self.lists += 1
        namespace = path.split("/namespaces/")[1].split("/")[0] if "/namespaces/" in path else ""
        items = self.items.get(namespace, [])
        for start in range(0, max(len(items), 1), limit):
            yield items[start : start + limit], self.version

    async def watch(self, path: str, version: str, timeout: int) -> AsyncIterator[Obj]:
        """A watch that the server ends at once, with nothing to report."""
        await asyncio.sleep(0.01)
        for _ in ():
            yield {}


def informer(lister: Lister, events: list[tuple[str, str]], store: Store | None = None) -> Informer:
    def handler(kind: str, old: Obj | None, new: Obj | None) -> None:
        events.append((kind, (new or old or {})["metadata"]["name"]))

    rest: Any = lister
    return Informer(rest, "g/v1", "things", ["one", "two"], store or Store(), handler, page=2)


async def test_a_relist_reports_only_changes_and_the_deletions_of_its_own_scope() -> None:
    lister, events = Lister(), []
    inf = informer(lister, events)
    lister.items = {"one": [obj("a", 1), obj("b", 2), obj("c", 3)], "two": [obj("d", 4, "two")]}
    assert await inf.relist("one") == "100" and not inf.synced.is_set()
    await inf.relist("two")
    assert inf.synced.is_set()  # every scope listed
    assert events == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c"), ("ADDED", "d")]
    events.clear()
    inf.store.put(obj("z", 150))  # the answer of a write made after the next list's snapshot
    lister.items["one"] = [obj("a", 1), obj("b", 7, changed=True)]  # c went in the gap
    await inf.relist("one")
    assert events == [("MODIFIED", "b"), ("DELETED", "c")]  # a unchanged; d, of scope two, kept
    assert inf.store.get(("one", "b"))["spec"] == {"changed": True}  # type: ignore[index]
    assert sorted(inf.store.all_keys()) == [("one", "a"), ("one", "b"), ("one", "z"), ("two", "d")]


async def test_a_late_deleted_event_of_an_older_object_keeps_the_newer_one_of_the_same_name() -> None:
    """Example names come back (they are named from their content): the DELETED of the object that
    went must not take the one created since under its name out of the cache."""
    lister, events = Lister(), []
    inf = informer(lister, events)
    inf._apply("ADDED", obj("a", 5))
    inf._apply("DELETED", obj("a", 6))
    inf._apply("ADDED", obj("a", 9, again=True))  # made again, and cached from our own write
    inf._apply("DELETED", obj("a", 6))  # a lagging watch repeats the first one's deletion
    inf._apply("MODIFIED", obj("a", 9, again=True))  # the echo of our write: nothing new
    assert events == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a")]
    assert inf.store.get(("one", "a"))["spec"] == {"again": True}  # type: ignore[index]


async def test_the_informer_is_alive_only_while_its_loops_run_and_show_progress() -> None:
    lister, clock = Lister(), [0.0]
    inf = Informer(lister, "g/v1", "things", [], Store(), lambda *_: None, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert not inf.alive()  # not started
    inf._tasks = [_running()]
    assert inf.alive()
    clock[0] += 2 * inf.watch_seconds + 61  # no page, event or watch end for too long
    assert not inf.alive()
    clock[0] = 0.0
    inf._tasks = [_running(), _running(done=True)]  # one scope's loop has died
    assert not inf.alive()


async def test_a_watch_that_ends_is_resumed_and_everything_is_listed_again_every_relist_period() -> None:
    lister, clock = Lister(), [0.0]
    rest: Any = lister
    inf = Informer(
        rest, "g/v1", "things", [], Store(), lambda *_: None, relist_seconds=3600, clock=lambda: clock[0]
    )
    inf.start()
    try:
        await asyncio.wait_for(inf.synced.wait(), 10)
        await asyncio.sleep(0.1)  # several watches ended and were resumed from their version
        assert lister.lists == 1
        clock[0] += 3600
        for _ in range(100):
            if lister.lists == 2:
                break
            await asyncio.sleep(0.02)
        assert lister.lists == 2
    finally:
        inf.stop()


class Restored(Lister):
    """An API server restored from a backup: its versions are below those the informer saw."""

    def __init__(self) -> None:
        super().__init__()
        self.watches = 0

    async def watch(self, path: str, version: str, timeout: int) -> AsyncIterator[Obj]:
        self.watches += 1
        if self.watches == 1:
            self.items = {"one": [obj("a", 1)]}  # b was made after the backup
            raise ApiError(504, "Timeout", f"Timeout: Too large resource version: {version}, current: 7")
        await asyncio.sleep(0.01)
        for _ in ():
            yield {}


async def test_a_watch_from_a_version_the_server_never_reached_relists_at_once() -> None:
    """As client-go: a "Too large resource version" is not retried three times first (the watch can
    never resume), and the objects the restored server no longer has are reported deleted."""
    lister, events = Restored(), []
    inf = informer(lister, events)
    inf.scopes = ["one"]
    lister.items = {"one": [obj("a", 1), obj("b", 2)]}
    inf.start()
    try:
        await asyncio.wait_for(inf.synced.wait(), 10)
        for _ in range(200):
            if len(events) == 3:
                break
            await asyncio.sleep(0.01)
        assert lister.lists == 2 and lister.watches >= 2
        assert events == [("ADDED", "a"), ("ADDED", "b"), ("DELETED", "b")]
    finally:
        inf.stop()
        await inf.join()


def _running(done: bool = False) -> Any:
    class Task:
        def done(self) -> bool:
            return done

    return Task()


def test_the_store_keeps_newer_versions_only_and_deletes_up_to_a_version() -> None:
    store = Store()
    assert store.put(obj("a", 5, x=1))
    assert not store.put(obj("a", 5, x=2)) and not store.put(obj("a", 4, x=3))
    assert store.put(obj("a", 6, x=4)) and store.get(("one", "a"))["spec"] == {"x": 4}  # type: ignore[index]
    assert not store.delete(("one", "a"), version=5)  # cached at 6: newer than what a list saw
    assert store.delete(("one", "a"), version=6) and store.get(("one", "a")) is None
    assert not store.delete(("one", "a"))


def test_the_store_deflates_its_objects_and_returns_fresh_copies() -> None:
    store = Store(trim=lambda o: {**o, "status": None})
    objects = [obj(f"n{i}", i + 1, text="a long and repetitive text " * 20 + str(i)) for i in range(50)]
    for o in objects:
        o["status"] = {"big": "x" * 100}
        store.put(o)
    got = dict(store.items())
    assert got[("one", "n7")] == {**objects[7], "status": None}
    got[("one", "n7")]["spec"]["text"] = "changed by a reader"
    assert store.get(("one", "n7"))["spec"]["text"].endswith("7")  # type: ignore[index]
    assert sum(len(v) for v in store._items.values()) < sum(len(str(o)) for o in objects) / 5


def test_a_store_of_versions_keeps_no_object() -> None:
    store = Store(trim=lambda _: None)
    store.put(obj("a", 9, big="x" * 1000))
    assert store.version(("one", "a")) == 9
    assert store.get(("one", "a")) == {"metadata": {"namespace": "one", "name": "a", "resourceVersion": "9"}}
    assert len(store._items[("one", "a")]) == 12  # its version and its size: nothing of the object
    assert store.nbytes() == 0  # nor is it measured: its reader keeps its own copy
