"""A simulated assistant and the people who use it, for the soak benchmark and the tests.

Each turn is what a real assistant does with `blocklearn.client`: search the index for the request,
put the examples found into a stand-in model's prompt, take its suggestion to the person, and record
what the person ran, with what the model was shown (`retrieved=`). The stand-in model knows some
commands already, follows an example that holds the answer most of the time (not always: models do
ignore their examples), and otherwise guesses wrong; the person then runs the right command, and the
run sometimes fails. As corrections are learned, more requests find their answer among the examples:
the acceptance and retrieval-hit ratios rise, which is what the dashboard shows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from blocklearn.client import Client, Recorded
from blocklearn.embed.text import normalise_command


@dataclass(frozen=True)
class Task:
    """Something people ask for: the context cells (its phrasings) and the command that does it."""

    context: str
    phrasings: tuple[str, ...]
    command: str
    guess: str  # what the model suggests without an example to follow; right when == command


@dataclass(frozen=True)
class Turn:
    """What happened in one turn, as the person and the model saw it."""

    recorded: Recorded
    suggestion: str
    shown_right_answer: bool
    exit_code: int


def as_request(doc: str) -> str:
    """How a person types a tldr description: no [x] markers, no trailing colon, lower case."""
    return re.sub(r"\[(\w+)\]", r"\1", doc).rstrip(":").strip().lower()


def tldr_tasks(records: Iterable[Mapping[str, str]], known: float, rng: random.Random) -> list[Task]:
    """Tasks from tldr-pages records (context, doc, command, page): asked as written or as typed; the
    model knows the command of a `known` share of them and guesses the page's name for the others."""
    tasks = []
    for r in records:
        guess = r["command"] if rng.random() < known else r["page"]
        tasks.append(Task(r["context"], (r["doc"], as_request(r["doc"])), r["command"], guess))
    return tasks


class Assistant:
    """The assistant's loop over the real client: search, suggest, record."""

    def __init__(
        self, client: Client, rng: random.Random, follows: float = 0.85, fails: float = 0.05, k: int = 3
    ) -> None:
        self.client, self.rng = client, rng
        self.follows, self.fails, self.k = follows, fails, k

    def turn(self, task: Task, trace_id: str) -> Turn:
        cells = [task.context, self.rng.choice(task.phrasings)]
        found = self.client.search(cells=cells, k=self.k)
        shown = [normalise_command(c.contents) for r in found.results for c in r.answer]
        right = normalise_command(task.command) in shown
        suggestion = task.command if right and self.rng.random() < self.follows else task.guess
        exit_code = 1 if self.rng.random() < self.fails else 0
        recorded = self.client.record_block(
            context=cells,
            generated=suggestion,
            executed=task.command,
            exit_code=exit_code,
            gen_trace_id=trace_id,
            retrieved=found,
        )
        return Turn(recorded, suggestion, right, exit_code)


def popular(tasks: Sequence[Task], rng: random.Random, skew: float = 1.0) -> Task:
    """One task, the first ones asked far more often (Zipf-like): people ask the same things again."""
    return rng.choices(tasks, weights=[1 / (i + 1) ** skew for i in range(len(tasks))])[0]
