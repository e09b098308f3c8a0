"""The eviction plan of a namespace (pure): the cap first, least recently seen first; then the age."""

from __future__ import annotations

import datetime

from blocklearn.controller.eviction import plan_evictions

DAY = 86400.0
NOW = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)


def candidate(name: str, days_ago: float) -> tuple[datetime.datetime, str, dict]:
    return NOW - datetime.timedelta(days=days_ago), name, {"metadata": {"name": name}}


def names(plan_evictions_result: list[tuple[dict, str]]) -> list[tuple[str, str]]:
    return [(example["metadata"]["name"], reason) for example, reason in plan_evictions_result]


def test_beyond_the_cap_the_least_recently_seen_go_and_the_name_breaks_ties() -> None:
    candidates = [candidate("c", 1), candidate("a", 3), candidate("b", 3), candidate("d", 0)]
    plan = plan_evictions(candidates, stored=6, cap=4, max_age=0, now=NOW.timestamp())
    assert names(plan.evictions) == [("a", "cap"), ("b", "cap")] and plan.next_due is None
    # Living Blocks' Examples are not candidates: the stored count can stay over the cap.
    plan = plan_evictions(candidates[:1], stored=6, cap=4, max_age=0, now=NOW.timestamp())
    assert names(plan.evictions) == [("c", "cap")]
    assert plan_evictions(candidates, stored=4, cap=4, max_age=0, now=NOW.timestamp()).evictions == []
    assert plan_evictions(candidates, stored=99, cap=0, max_age=0, now=NOW.timestamp()).evictions == []


def test_past_the_maximum_age_any_goes_and_the_next_to_age_out_is_due() -> None:
    candidates = [candidate("old", 10), candidate("older", 12), candidate("young", 2), candidate("new", 0.5)]
    plan = plan_evictions(candidates, stored=4, cap=3, max_age=7 * DAY, now=NOW.timestamp())
    assert names(plan.evictions) == [("older", "cap"), ("old", "max_age")]
    assert plan.next_due == (NOW - datetime.timedelta(days=2)).timestamp() + 7 * DAY
