"""The simulated assistant of the soak benchmark and the dashboard test: what it suggests and records."""

from __future__ import annotations

import random
from typing import Any

from blocklearn.client import Recorded
from blocklearn.devtools.assistant import Assistant, Task, as_request, popular, tldr_tasks
from blocklearn.search.schema import SearchResponse

TASK = Task("# kubectl", ("List every pod.",), "kubectl get pods -A", "kubectl get pods")


class FakeClient:
    def __init__(self, answers: list[str]) -> None:
        self.answers, self.recorded = answers, []  # type: list[str], list[dict[str, Any]]

    def search(self, **_: Any) -> SearchResponse:
        results = [
            {
                "namespace": "default",
                "name": f"ex-{i}",
                "score": 1.0,
                "query": "",
                "answer": [{"kind": "code", "contents": a}],
                "blockRef": {"name": f"b-{i}"},
            }
            for i, a in enumerate(self.answers)
        ]
        return SearchResponse.model_validate({"results": results, "model": "m", "indexSize": len(results)})

    def record_block(self, **kwargs: Any) -> Recorded:
        self.recorded.append(kwargs)
        return Recorded("default", kwargs["gen_trace_id"], "created")


def turn(answers: list[str], follows: float, fails: float = 0.0) -> tuple[str, dict[str, Any]]:
    fake = FakeClient(answers)
    assistant = Assistant(fake, random.Random(0), follows=follows, fails=fails)  # type: ignore[arg-type]
    result = assistant.turn(TASK, "t-1")
    return result.suggestion, fake.recorded[0]


def test_the_model_follows_an_example_holding_the_answer_and_records_what_it_was_shown() -> None:
    suggestion, recorded = turn(["kubectl get nodes", "kubectl  get pods -A"], follows=1.0)
    assert suggestion == "kubectl get pods -A"
    assert recorded["executed"] == "kubectl get pods -A" and recorded["exit_code"] == 0
    assert [r.name for r in recorded["retrieved"].results] == ["ex-0", "ex-1"]


def test_without_the_answer_shown_or_when_it_ignores_it_the_model_guesses() -> None:
    assert turn(["kubectl get nodes"], follows=1.0)[0] == "kubectl get pods"
    assert turn(["kubectl get pods -A"], follows=0.0)[0] == "kubectl get pods"
    assert turn([], follows=1.0, fails=1.0)[1]["exit_code"] == 1


def test_tasks_from_tldr_records_and_their_popularity() -> None:
    record = {"context": "# tar", "doc": "E[x]tract an archive:", "command": "tar xf a.tar", "page": "tar"}
    [task] = tldr_tasks([record], known=0.0, rng=random.Random(0))
    assert task.phrasings == ("E[x]tract an archive:", "extract an archive") and task.guess == "tar"
    assert as_request("List [a]ll files:") == "list all files"
    tasks = [Task("c", ("p",), f"cmd {i}", "g") for i in range(50)]
    rng = random.Random(1)
    drawn = [popular(tasks, rng).command for _ in range(2000)]
    assert drawn.count("cmd 0") > 5 * drawn.count("cmd 49")
