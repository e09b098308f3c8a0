"""The emulator's objects on disk, durable as they change, as etcd keeps a real API server's.

A snapshot (`state.json`: the resourceVersion and every object) and, beside it, an append-only
journal (`state.journal`: one JSON line per change, the object or its deletion, with its
resourceVersion). Each line is written with one unbuffered write before the API answers, so a
`kill -9` of the emulator loses nothing it acknowledged (a power cut may: there is no fsync).
At start the snapshot is loaded, the journal replayed (a torn last line is dropped) and both
compacted into a new snapshot; the journal is compacted again whenever it holds more changes than
there are objects, so replay stays proportional to the state.

A restart is an API server restart to clients: resourceVersions continue from the saved one and
every older watch gets 410 Gone (`Emulator.restore`), so informers relist, as after a real one.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from blocklearn.devtools.emulator.api import Emulator, Key, Obj

log = logging.getLogger("blocklearn.devtools.emulator")
MIN_COMPACT_CHANGES = 10_000


class StateError(Exception):
    """The saved state cannot be read; the message says which file and what to do."""


class Journal:
    """Keeps one emulator's objects in `path` (the snapshot) and `path.journal`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path.with_suffix(".journal")
        self._file: IO[bytes] | None = None
        self._emulator: Emulator | None = None
        self._changes = 0
        self._objects = 0

    def open(self, emulator: Emulator) -> None:
        """Restore the saved objects into `emulator` (before it serves), compact, and record every
        change it makes from now on."""
        data = self._load()
        if data["objects"]:
            # Built-in CRDs are registered fresh: their stored copy is the running code's, not the saved one.
            registered = {tuple(k) for k, _ in emulator.snapshot()["objects"]}
            saved = [[k, o] for k, o in data["objects"] if tuple(k) not in registered]
            emulator.restore({"resourceVersion": data["resourceVersion"], "objects": saved})
            log.info(
                "Loaded objects: path=%s objects=%d resource_version=%s",
                self.path,
                len(data["objects"]),
                data["resourceVersion"],
            )
        self.compact(emulator)
        emulator.on_change = self._record

    def close(self, emulator: Emulator) -> None:
        emulator.on_change = None
        self.compact(emulator)
        if self._file is not None:
            self._file.close()
            self._file = None
        log.info("Saved objects: path=%s", self.path)

    def compact(self, emulator: Emulator) -> None:
        """Write the whole state as the new snapshot (atomically), then start an empty journal."""
        snapshot = emulator.snapshot()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as out:
            json.dump(snapshot, out)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)  # a crash before this leaves the old snapshot and its whole journal
        if self._file is not None:
            self._file.close()
        # Unbuffered: each change is one write(2), in the kernel before the API answers.
        self._file = self.journal_path.open("wb", buffering=0)
        self._changes, self._objects, self._emulator = 0, len(snapshot["objects"]), emulator

    def _record(self, key: Key, type_: str, obj: Obj) -> None:
        """One change: the object as stored now, or its deletion (a watch event's type and object)."""
        assert self._file is not None and self._emulator is not None
        deleted = type_ == "DELETED"
        rv = obj["metadata"]["resourceVersion"]
        line = {"key": list(key), "object": None if deleted else obj, "rv": rv}
        self._file.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
        self._changes += 1
        self._objects += -1 if deleted else 1 if type_ == "ADDED" else 0
        if self._changes > max(MIN_COMPACT_CHANGES, self._objects):
            self.compact(self._emulator)

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = {"resourceVersion": 0, "objects": []}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                objects = {tuple(k): o for k, o in data["objects"]}
                rv = int(data["resourceVersion"])
            except (ValueError, KeyError, TypeError) as exc:
                raise StateError(
                    f"{self.path} is not a saved emulator state ({exc}): move it away to start empty"
                ) from None
        else:
            objects, rv = {}, 0
        replayed = dropped = 0
        if self.journal_path.exists():
            lines = self.journal_path.read_bytes().splitlines()
            for number, raw in enumerate(lines):
                try:
                    change = json.loads(raw)
                    key, obj, change_rv = tuple(change["key"]), change["object"], int(change["rv"])
                except (ValueError, KeyError, TypeError):
                    dropped = len(lines) - number  # a torn write: the process died in it
                    break
                if change_rv <= rv:
                    continue  # already in the snapshot (a crash between compaction's two steps)
                if obj is None:
                    objects.pop(key, None)
                else:
                    objects[key] = obj
                rv, replayed = change_rv, replayed + 1
        if replayed or dropped:
            log.info("Replayed journal: path=%s changes=%d dropped=%d", self.journal_path, replayed, dropped)
        return {"resourceVersion": rv, "objects": [[list(k), o] for k, o in objects.items()]}
