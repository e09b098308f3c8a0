"""`blocklearn dev`'s supervisor where a signal or a person's hand gets in the way: a Ctrl-C while a
child is being started, a log removed while dev runs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from blocklearn.devtools.dev import Child, Ports, Stack, Stop
from tests.processes import free_port


def test_a_stop_signalled_while_a_child_starts_leaves_no_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(tmp_path, Ports(free_port(), free_port(), free_port()))
    start = Child.start

    def start_then_signal(child: Child) -> None:
        start(child)
        stack.on_signal(signal.SIGTERM, None)  # arrives right after Popen, before the child is recorded

    monkeypatch.setattr(Child, "start", start_then_signal)
    with pytest.raises(Stop):
        stack.start()
    emulator = stack.children[0]
    assert emulator.proc is not None and stack.started == [emulator]
    assert stack.stop() == {"emulator": emulator.proc.returncode}
    assert emulator.proc.returncode is not None  # stopped, not orphaned


def test_the_tail_of_a_removed_log_is_empty(tmp_path: Path) -> None:
    child = Child("index", ["index"], tmp_path / "index.log")
    child.log.write_text("Started index\nlast words\n")
    assert child.tail().splitlines() == ["Started index", "last words"]
    child.log.unlink()
    assert child.tail() == ""
    child.offset = 10_000
    child.log.write_text("a new log in its place\n")  # smaller than where this run began
    assert child.tail() == "a new log in its place"
