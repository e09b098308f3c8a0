"""What became of a suggestion, and of the examples the assistant was shown with it.

Derived per Block, pure and level-triggered like the learning rule, from the Block's spec and the
answers of the Examples it names (`spec.retrievedExamples`) as the controller's cache holds them.
Two values, both in the Block's status and counted in `blocklearn_suggestions_total{outcome,retrieval}`
once per generation of the Block (`is_counted`):

- the suggestion's outcome, from the same facts the learning rule decides on, but independent of
  its policy (learning from failures or from unsuggested cells changes what is learned, not what
  happened): `NoSuggestion` (a cell written without one, whatever became of it), `NotExecuted`,
  `Failed` (the run failed), `Accepted` (run unchanged) or `Corrected`;
- the retrieval outcome: `Hit` when the executed cell equals, whitespace-normalised, the answer of
  one of the named Examples; `Miss` when Examples were named, all exist and none matches; `NotRecorded`
  when none is named; `Unknown` when it cannot be told (a named Example no longer exists and none of
  the others matched, or nothing was executed yet).

A `Hit` or `Miss` judges what the assistant was shown, which does not change afterwards: once decided
for a generation of the Block it stays (`decided_retrieval`), even when one of its Examples later
expires, is evicted or taken out by curation. Evaluation Blocks (`spec.evalMode`) and Invalid ones
have no outcome: they say nothing about the assistant in production.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

from blocklearn.embed.text import normalise_command
from blocklearn.learn.redaction import redact
from blocklearn.learn.redaction.engine import PLACED
from blocklearn.learn.rule import ran_as_suggested
from blocklearn.resources.models import BlockSpec, RetrievalOutcome, SuggestionOutcome

SUGGESTION_OUTCOMES: tuple[SuggestionOutcome, ...] = get_args(SuggestionOutcome)
RETRIEVAL_OUTCOMES: tuple[RetrievalOutcome, ...] = get_args(RetrievalOutcome)
_DECIDED: tuple[RetrievalOutcome, ...] = ("Hit", "Miss")


@dataclass(frozen=True)
class Outcomes:
    """A Block's suggestion and retrieval outcomes: one label pair of the counter."""

    suggestion: SuggestionOutcome
    retrieval: RetrievalOutcome


# The pairs that can occur (nothing executed is never a Hit or a Miss): the counter's bounded series.
PAIRS: tuple[Outcomes, ...] = tuple(
    Outcomes(s, r)
    for s, r in itertools.product(SUGGESTION_OUTCOMES, RETRIEVAL_OUTCOMES)
    if not (s == "NotExecuted" and r in _DECIDED)
)


def suggestion_outcome(spec: BlockSpec) -> SuggestionOutcome | None:
    """What the person did with the suggestion; None for a Block of an evaluation run."""
    if spec.eval_mode:
        return None
    generated, executed = spec.generated_cell, spec.executed_cell
    if generated is None:
        return "NoSuggestion"
    if executed is None:
        return "NotExecuted"
    if spec.exit_code not in (None, 0):
        return "Failed"
    return "Accepted" if ran_as_suggested(generated, executed) else "Corrected"


def retrieval_outcome(spec: BlockSpec, answers: Mapping[str, str | None]) -> RetrievalOutcome:
    """Whether the executed cell was among the answers shown. `answers` holds the named Examples that
    exist, by name (None: an answer that cannot be read); a name missing from it is gone."""
    names = spec.retrieved_examples
    if not names:
        return "NotRecorded"
    if spec.executed_cell is None:
        return "Unknown"
    if matched_example(spec, answers) is not None:
        return "Hit"
    return "Unknown" if any(n not in answers for n in names) else "Miss"


def matched_example(spec: BlockSpec, answers: Mapping[str, str | None]) -> str | None:
    """The first Example shown (in rank order) whose answer is the executed cell, whitespace-normalised:
    the one a Hit was for; None when none is."""
    if spec.executed_cell is None:
        return None
    shown = {n: normalise_command(a) for n in spec.retrieved_examples if (a := answers.get(n)) is not None}
    executed = normalise_command(spec.executed_cell.contents)
    found = next((n for n, a in shown.items() if a == executed), None)
    if found is None and any(PLACED.search(a) for a in shown.values()):
        # An Example's answer is the executed cell redacted: compare like with like, only where needed.
        redacted = normalise_command(redact(spec.executed_cell.contents)[0])
        found = next((n for n, a in shown.items() if a == redacted), None)
    return found


def assess(
    spec: BlockSpec, answers: Mapping[str, str | None], decided: RetrievalOutcome | None = None
) -> Outcomes | None:
    """Both outcomes of a valid Block; `decided` is a retrieval outcome already decided for this
    generation (`decided_retrieval`), which stays."""
    suggestion = suggestion_outcome(spec)
    if suggestion is None:
        return None
    return Outcomes(suggestion, decided or retrieval_outcome(spec, answers))


def shown_answers(
    names: Iterable[str], lookup: Callable[[str], Mapping[str, Any] | None]
) -> dict[str, str | None]:
    """The answers of the named Examples that exist, by name, from a lookup into a cache."""
    return {name: example_answer(ex) for name in names if (ex := lookup(name)) is not None}


def example_answer(example: Mapping[str, Any]) -> str | None:
    """An Example's answer (its executed cell's contents), or None when it cannot be read."""
    answer = (example.get("spec") or {}).get("answer")
    cells = answer if isinstance(answer, list) else [answer]
    texts = [t for c in cells if isinstance(c, Mapping) and isinstance(t := c.get("contents"), str)]
    return "\n".join(texts) if texts and len(texts) == len(cells) else None


def decided_retrieval(block: Mapping[str, Any]) -> RetrievalOutcome | None:
    """The Hit or Miss the Block's status holds for its current generation, if any."""
    status = block.get("status") or {}
    if status.get("observedGeneration") != block.get("metadata", {}).get("generation"):
        return None
    value = status.get("retrievalOutcome")
    return next((d for d in _DECIDED if d == value), None)


def is_counted(block: Mapping[str, Any]) -> bool:
    """Whether the Block's current generation is already counted in `blocklearn_suggestions_total`:
    its status records a decision for that generation. Each generation is counted once, under the
    first pair decided for it; a later retrieval outcome (an `Unknown` that becomes a `Hit` when its
    Example comes back) is written to the status, not counted again. A status written by the release
    before the outcomes existed holds the decision without them: an upgrade writes them, uncounted,
    rather than counting every Block there is at once."""
    status, generation = block.get("status") or {}, block.get("metadata", {}).get("generation")
    return generation is not None and status.get("observedGeneration") == generation
