from blocklearn.resources.conditions import find, set_condition


def test_transition_time_moves_only_when_the_status_changes() -> None:
    first = set_condition([], "Ready", "True", "Reconciled", "ok", 1)
    first[0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    same = set_condition(first, "Ready", "True", "Reconciled", "still ok", 2)
    assert same[0]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert same[0]["observedGeneration"] == 2 and same[0]["message"] == "still ok"
    moved = set_condition(same, "Ready", "False", "Invalid", "bad", 3)
    assert moved[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_other_conditions_are_kept() -> None:
    conds = set_condition([], "Ready", "True", "Reconciled", "", 1)
    conds = set_condition(conds, "Learned", "False", "Unchanged", "", 1)
    assert find(conds, "Ready") is not None
    learned = find(conds, "Learned")
    assert learned is not None and learned["reason"] == "Unchanged"
    assert len(conds) == 2
