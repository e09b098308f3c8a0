import datetime

import pytest

from blocklearn.controller.backfill import last_changed, parse_time, select


def block(name: str, created: str, executed: str | None = None, writes: list[str] | None = None) -> dict:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "managedFields": [{"time": t} for t in writes or []],
        },
        "spec": {"executedAt": executed} if executed else {},
    }


def test_the_latest_known_change_counts() -> None:
    b = block("b", "2024-01-01T00:00:00Z", executed="2024-03-01T00:00:00Z", writes=["2024-02-01T00:00:00Z"])
    assert last_changed(b) == datetime.datetime(2024, 3, 1, tzinfo=datetime.UTC)
    assert last_changed(block("b", "2024-01-01T00:00:00Z", executed="not a time")) == datetime.datetime(
        2024, 1, 1, tzinfo=datetime.UTC
    )


def test_select_keeps_blocks_changed_at_or_after_the_time() -> None:
    blocks = [
        block("old", "2024-01-01T00:00:00Z"),
        block("new", "2024-06-01T00:00:00Z"),
        block("edited", "2023-01-01T00:00:00Z", writes=["2024-07-01T00:00:00Z"]),
    ]
    since = parse_time("2024-06-01T00:00:00Z")
    assert [b["metadata"]["name"] for b in select(blocks, since)] == ["new", "edited"]


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        parse_time("2024-06-01T00:00:00")
