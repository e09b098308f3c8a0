"""Pydantic models of every resource shape: the single source of the CRD schemas."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Limits, in the CRDs as maxLength/maxItems, so that the API server refuses an oversized Block at its
# create and no Block it admits makes the controller write an object the server would refuse: etcd
# stores at most 1.5 MiB a value, and the API server writes JSON with `<`, `>`, `&` and control
# characters escaped (6 bytes a character at worst). The worst Block is then about 1.06 MB and its
# Example, the same cells plus the largest embedding, about 1.45 MB (tests/test_limits.py adds it up).
# The query embeds only the last cells (at most 4,000 characters), so the caps cost retrieval nothing.
MAX_CELLS = 32
MAX_CELL_CHARS = 4096
MAX_OUTPUTS = 2
MAX_OUTPUT_CHARS = 512
MAX_LANGUAGE_CHARS = 32
MAX_TRACE_IDS = 8
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 253  # a DNS subdomain, as Kubernetes names are
MAX_TIME_CHARS = 64
# What the assistant was shown: the names of the Examples a search returned (k is at most 10 there too).
MAX_RETRIEVED = 10
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # a DNS subdomain
# Conditions: tighter than metav1.Condition's (32 KiB messages), enough for ours (set_condition cuts).
MAX_CONDITIONS = 4
MAX_CONDITION_MESSAGE_CHARS = 2048
MAX_REASON_CHARS = 128
MAX_CONDITION_TYPE_CHARS = 64
# Base64 of the largest vector (65,536 float32, the hashing embedder's maximum dimension); the pattern
# also bounds its bytes (1 a character: base64 has nothing to escape).
MAX_EMBEDDING_CHARS = 4 * -(-65536 * 4 // 3)
BASE64_PATTERN = "^[A-Za-z0-9+/]*={0,2}$"


def plain_text(value: str) -> str:
    """Text that can be embedded and stored: no NUL, valid UTF-8. A pydantic validator."""
    if "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can carry lone surrogates (invalid UTF-8) as escapes; they cannot be embedded.
        raise ValueError("must be valid UTF-8 (it holds a lone surrogate)") from None
    return value


class Resource(BaseModel):
    """Base of all resource shapes: camelCase on the wire, unknown fields are an error."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", strict=True)


class Cell(Resource):
    """One notebook cell, as in Foyle's BlockLog."""

    kind: Literal["markup", "code"] = Field(description="Whether the cell is prose (markup) or code.")
    language: str = Field(
        default="",
        max_length=MAX_LANGUAGE_CHARS,
        description="Language of a code cell, for example bash or python.",
    )
    contents: Annotated[str, Field(max_length=MAX_CELL_CHARS)] = Field(description="The text of the cell.")
    outputs: list[Annotated[str, Field(max_length=MAX_OUTPUT_CHARS)]] = Field(
        default_factory=list, max_length=MAX_OUTPUTS, description="Text outputs the cell produced."
    )

    @field_validator("contents", "language")
    @classmethod
    def _text(cls, value: str) -> str:
        return plain_text(value)

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, values: list[str]) -> list[str]:
        return [plain_text(v) for v in values]


class Doc(Resource):
    """The notebook context in which a cell was suggested and executed."""

    cells: list[Cell] = Field(
        default_factory=list, max_length=MAX_CELLS, description="Cells before the suggested cell, in order."
    )


class BlockSpec(Resource):
    """What happened to one suggested cell: the context, the suggestion and what the person ran."""

    doc: Doc = Field(default_factory=Doc, description="The notebook context before the cell.")
    generated_cell: Cell | None = Field(
        default=None,
        alias="generatedCell",
        description="The cell the assistant suggested; absent when a person wrote the cell alone.",
    )
    executed_cell: Cell | None = Field(
        default=None, alias="executedCell", description="The cell the person executed; absent until run."
    )
    exit_code: int | None = Field(default=None, alias="exitCode", description="Exit code of the execution.")
    executed_at: datetime.datetime | None = Field(
        default=None,
        alias="executedAt",
        description="When the cell was executed (RFC 3339).",
        json_schema_extra={"maxLength": MAX_TIME_CHARS},
    )
    gen_trace_id: str | None = Field(
        default=None,
        alias="genTraceId",
        max_length=MAX_ID_CHARS,
        description="Trace id of the generation request.",
    )
    exec_trace_ids: list[Annotated[str, Field(max_length=MAX_ID_CHARS)]] = Field(
        default_factory=list,
        alias="execTraceIds",
        max_length=MAX_TRACE_IDS,
        description="Trace ids of the executions.",
    )
    eval_mode: bool = Field(
        default=False, alias="evalMode", description="True for blocks produced by evaluation runs."
    )
    suggestion_status: Literal["Accepted", "Rejected", "Unknown"] | None = Field(
        default=None, alias="suggestionStatus", description="What the person did with the suggestion."
    )
    retrieved_examples: list[
        Annotated[
            str, Field(max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN, description="An Example's name.")
        ]
    ] = Field(
        default_factory=list,
        alias="retrievedExamples",
        max_length=MAX_RETRIEVED,
        description="Names of the Examples (in the Block's namespace) the assistant was shown as few-shot"
        " examples for this suggestion, in rank order, as the search returned them.",
    )

    @field_validator("executed_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # strict mode refuses strings for datetimes; the wire format is an RFC 3339 string.
        if isinstance(value, str):
            try:
                parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as exc:
                raise ValueError(f"not an RFC 3339 time: {value!r}") from exc
            if parsed.tzinfo is None:
                raise ValueError(f"RFC 3339 time needs a zone offset: {value!r}")
            return parsed
        return value


class Condition(Resource):
    """A Kubernetes-style condition, as metav1.Condition."""

    type: str = Field(
        max_length=MAX_CONDITION_TYPE_CHARS,
        description="Type of the condition, for example Ready or Learned.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=MAX_REASON_CHARS, description="CamelCase reason for the condition's last transition."
    )
    message: str = Field(
        default="", max_length=MAX_CONDITION_MESSAGE_CHARS, description="Human-readable details."
    )
    last_transition_time: str = Field(
        alias="lastTransitionTime",
        max_length=MAX_TIME_CHARS,
        description="When the status last changed (RFC 3339).",
    )
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The generation the condition was set for."
    )


# What became of the suggestion, and of the examples shown with it (blocklearn.learn.outcome).
SuggestionOutcome = Literal["Accepted", "Corrected", "Failed", "NotExecuted", "NoSuggestion"]
RetrievalOutcome = Literal["Hit", "Miss", "NotRecorded", "Unknown"]


class BlockStatus(Resource):
    """What the controller concluded about a Block."""

    conditions: list[Condition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="Ready and Learned conditions."
    )
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The generation last reconciled."
    )
    example_ref: str | None = Field(
        default=None,
        alias="exampleRef",
        max_length=MAX_NAME_CHARS,
        description="Name of the Example this Block taught (created, or counted as another occurrence of).",
    )
    decided_at: str | None = Field(
        default=None,
        alias="decidedAt",
        max_length=MAX_TIME_CHARS,
        description="When the controller decided about the Block's current content (RFC 3339); the Block"
        " is deleted the block TTL after it.",
    )
    suggestion_outcome: SuggestionOutcome | None = Field(
        default=None,
        alias="suggestionOutcome",
        description="What the person did with the suggestion: Accepted (ran it unchanged and it"
        " succeeded), Corrected, Failed (the run failed), NotExecuted, or NoSuggestion (written"
        " without one). Absent for an Invalid or evaluation Block.",
    )
    retrieval_outcome: RetrievalOutcome | None = Field(
        default=None,
        alias="retrievalOutcome",
        description="Whether the executed cell was among the answers of spec.retrievedExamples: Hit,"
        " Miss, NotRecorded (none named) or Unknown (a named Example is gone, or nothing ran yet).",
    )


class BlockRef(Resource):
    """The Block an Example was learned from: its provenance, kept as plain fields so that it outlives
    the Block."""

    name: str = Field(max_length=MAX_NAME_CHARS, description="Name of the Block.")
    uid: str = Field(default="", max_length=MAX_ID_CHARS, description="UID of the Block.")
    gen_trace_id: str | None = Field(
        default=None,
        alias="genTraceId",
        max_length=MAX_ID_CHARS,
        description="Trace id of the generation request of the Block.",
    )
    exec_trace_ids: list[Annotated[str, Field(max_length=MAX_ID_CHARS)]] | None = Field(
        default=None,
        alias="execTraceIds",
        max_length=MAX_TRACE_IDS,
        description="Trace ids of the Block's executions.",
    )
    learned_at: str | None = Field(
        default=None,
        alias="learnedAt",
        max_length=MAX_TIME_CHARS,
        description="When the correction was made: the Block's executedAt, else when its content appeared"
        " (RFC 3339).",
    )


class ExampleSpec(Resource):
    """A few-shot example: the context (query) and what the person actually ran (answer).

    Only what is used: the context cells that are embedded, not the whole notebook, and no outputs."""

    query: Doc = Field(
        description="The context cells that are embedded: the cell before the executed one and the"
        " markup cells just before it, without outputs, cut to the embedded text's size."
    )
    answer: list[Cell] = Field(max_length=1, description="The executed cell, without its outputs.")
    block_ref: BlockRef = Field(
        alias="blockRef", description="The Block that first taught this Example (its provenance)."
    )


class ExampleStatus(Resource):
    """The embedding of an Example, kept where the index sidecar can watch it, and how often and how
    recently its correction was taught."""

    embedding: str | None = Field(
        default=None,
        max_length=MAX_EMBEDDING_CHARS,
        pattern=BASE64_PATTERN,
        description="Base64 of the little-endian float32 embedding vector.",
    )
    embedding_dim: int | None = Field(default=None, alias="embeddingDim", description="Vector dimension.")
    embedding_model: str | None = Field(
        default=None,
        alias="embeddingModel",
        max_length=MAX_ID_CHARS,
        description="Embedder and model that made the vector.",
    )
    text_hash: str | None = Field(
        default=None,
        alias="textHash",
        max_length=MAX_ID_CHARS,
        description="Hash of the embedded text and model: detects staleness.",
    )
    embedded_at: str | None = Field(
        default=None, alias="embeddedAt", max_length=MAX_TIME_CHARS, description="When it was embedded."
    )
    source_changed_at: str | None = Field(
        default=None,
        alias="sourceChangedAt",
        max_length=MAX_TIME_CHARS,
        description="When the Block last changed; the index measures learning latency from it.",
    )
    occurrences: int | None = Field(
        default=None,
        ge=1,
        description="How many Blocks taught this same correction (rendered query and answer); absent"
        " means 1.",
    )
    last_seen_at: str | None = Field(
        default=None,
        alias="lastSeenAt",
        max_length=MAX_TIME_CHARS,
        description="When a Block last taught this correction, or ran it as one of the examples it was"
        " shown (a retrieval Hit; refreshed at most hourly), in RFC 3339; absent: when it was created."
        " Eviction takes the least recently seen first.",
    )
    conditions: list[Condition] = Field(
        default_factory=list, max_length=MAX_CONDITIONS, description="The Embedded condition."
    )
