"""The learning rule: does a Block teach something, and what Example does it teach?

Pure and deterministic: the kopf handler fetches the Block, calls `decide` and writes the result.
Every outcome carries a CamelCase reason so that "why did it not learn?" is answered by
`kubectl get blk` and by one PromQL query over the reconcile counter.
"""

from __future__ import annotations

import enum
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from blocklearn import GROUP
from blocklearn.embed.text import normalise_command, query_cells, query_text
from blocklearn.learn.redaction import redact
from blocklearn.resources.models import BlockRef, BlockSpec, Cell, Doc, ExampleSpec
from blocklearn.resources.names import hashed_name
from blocklearn.runtime.objects import now_rfc3339


class Reason(enum.StrEnum):
    LEARNED = "Learned"
    UNCHANGED = "Unchanged"
    NOT_EXECUTED = "NotExecuted"
    EVAL_MODE = "EvalMode"
    EXECUTION_FAILED = "ExecutionFailed"
    NO_SUGGESTION = "NoSuggestion"
    EMPTY = "EmptyCell"
    NO_CONTEXT = "NoContext"
    INVALID = "Invalid"
    CONTAINS_SECRET = "ContainsSecret"
    EXCLUDED = "Excluded"


# `kubectl annotate blk NAME blocklearn.dev/learn=false` takes a Block's correction out of what the
# assistant learns, keeping the Block as the record; removing the annotation brings it back.
LEARN_ANNOTATION = f"{GROUP}/learn"


@dataclass(frozen=True)
class Policy:
    """Which Blocks teach. The defaults are Foyle's: only corrections of a suggestion that ran."""

    learn_without_suggestion: bool = False
    learn_from_failures: bool = False
    # What to do with credentials in the cells: replace them by placeholders, or skip the Block.
    secrets: Literal["redact", "skip"] = "redact"


@dataclass(frozen=True)
class Decision:
    reason: Reason
    message: str
    example: ExampleSpec | None = None
    redactions: Counter[str] = field(default_factory=Counter)

    @property
    def teaches(self) -> bool:
        return self.example is not None


def is_excluded(annotations: Mapping[str, str] | None) -> bool:
    """Whether a person took the Block out of learning with the `blocklearn.dev/learn=false` annotation."""
    return (annotations or {}).get(LEARN_ANNOTATION, "").strip().lower() == "false"


def decide(spec: BlockSpec, block: BlockRef, policy: Policy = Policy(), excluded: bool = False) -> Decision:
    """Decide from the Block's current spec and curation alone (level-triggered) whether it teaches,
    and what. An excluded Block never teaches, whatever its spec says."""
    if excluded:
        return Decision(
            Reason.EXCLUDED, f"Excluded from learning by the annotation {LEARN_ANNOTATION}=false."
        )
    if spec.eval_mode:
        return Decision(Reason.EVAL_MODE, "Block was produced by an evaluation run.")
    executed = spec.executed_cell
    if executed is None:
        return Decision(Reason.NOT_EXECUTED, "No cell has been executed yet.")
    if not executed.contents.strip():
        return Decision(Reason.EMPTY, "The executed cell is empty.")
    if not any(c.contents.strip() for c in spec.doc.cells):
        return Decision(Reason.NO_CONTEXT, "The document has no context to retrieve the cell by.")
    if spec.exit_code not in (None, 0) and not policy.learn_from_failures:
        return Decision(Reason.EXECUTION_FAILED, f"The execution failed with exit code {spec.exit_code}.")
    generated = spec.generated_cell
    if generated is None:
        if not policy.learn_without_suggestion:
            return Decision(Reason.NO_SUGGESTION, "The cell was written without a suggestion.")
        message = "Learned from a cell written without a suggestion."
    elif ran_as_suggested(generated, executed):
        return Decision(Reason.UNCHANGED, "The suggestion was executed unchanged.")
    else:
        message = "The person corrected the suggestion before running it."
    # Only what the Example keeps is redacted (and counted): the cells the query renders, without
    # outputs, and the executed cell without its outputs. Redacted whole, then cut, so that no
    # half of a secret survives at the cut and the cut falls where the embedded text's does.
    found: Counter[str] = Counter()
    cells = query_cells([_redacted(c, found) for c in query_cells(spec.doc.cells, sys.maxsize)])
    answer = _redacted(executed.model_copy(update={"outputs": []}), found)
    if found and policy.secrets == "skip":
        kinds = ", ".join(sorted(found))
        return Decision(
            Reason.CONTAINS_SECRET, f"The cells contain secrets ({kinds}); not learned.", None, found
        )
    provenance = block.model_copy(
        update={
            "gen_trace_id": spec.gen_trace_id,
            "exec_trace_ids": spec.exec_trace_ids or None,
            "learned_at": now_rfc3339(spec.executed_at.timestamp()) if spec.executed_at else block.learned_at,
        }
    )
    example = ExampleSpec(query=Doc(cells=cells), answer=[answer], block_ref=provenance)
    if found:
        message += f" Redacted {sum(found.values())} secret(s): {', '.join(sorted(found))}."
    return Decision(Reason.LEARNED, message, example, found)


def ran_as_suggested(generated: Cell, executed: Cell) -> bool:
    """Whether the person ran the suggestion unchanged (surrounding whitespace aside)."""
    return generated.contents.strip() == executed.contents.strip()


def _redacted(cell: Cell, found: Counter[str]) -> Cell:
    contents, hits = redact(cell.contents)
    found.update(hits)
    return cell.model_copy(update={"contents": contents})


# An Example's name: a readable prefix from the answer, and a hash of what the correction is.
NAME_CHARS = 63  # a DNS label, which a DNS subdomain (what Kubernetes requires) also accepts
HASH_CHARS = 16  # 64 bits: two different corrections sharing a name is beyond any namespace's size


def correction_key(example: ExampleSpec) -> tuple[str, str]:
    """What makes two Examples the same correction: the embedded query text and the executed
    cell, whitespace-normalised (as search's distinct answers compare them)."""
    answer = "\n".join(c.contents for c in example.answer)
    return query_text(example.query.cells)[0], normalise_command(answer)


def example_name(example: ExampleSpec) -> str:
    """The Example's name, from its content: Blocks that teach the same correction in a namespace
    name the same Example, so the API server's create arbitrates their race (one wins, the others
    get 409 AlreadyExists and count an occurrence). At most 63 characters, a valid DNS-1123 name,
    whatever the Block's name."""
    query, answer = correction_key(example)
    key = f"{query}\0{answer}"
    return hashed_name(answer, key, length=NAME_CHARS, hash_chars=HASH_CHARS, fallback="example")
