"""Pydantic models of every resource shape: the single source of the CRD schemas."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Limits a Block must respect to be learned from. Kubernetes caps an object near 1.5 MiB; these keep one
# Example (and its embedding text) far below that and make an abusive Block fail loudly, not slowly.
MAX_CELL_CHARS = 64 * 1024
MAX_CELLS = 1000
MAX_OUTPUTS = 100


class Resource(BaseModel):
    """Base of all resource shapes: camelCase on the wire, unknown fields are an error."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", strict=True)


class Cell(Resource):
    """One notebook cell, as in Foyle's BlockLog."""

    kind: Literal["markup", "code"] = Field(description="Whether the cell is prose (markup) or code.")
    language: str = Field(default="", description="Language of a code cell, for example bash or python.")
    contents: Annotated[str, Field(max_length=MAX_CELL_CHARS)] = Field(description="The text of the cell.")
    outputs: list[Annotated[str, Field(max_length=MAX_CELL_CHARS)]] = Field(
        default_factory=list, max_length=MAX_OUTPUTS, description="Text outputs the cell produced."
    )

    @field_validator("contents", "language")
    @classmethod
    def _text(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("must not contain NUL bytes")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # JSON can carry lone surrogates (invalid UTF-8) as escapes; they cannot be embedded.
            raise ValueError("must be valid UTF-8 (it holds a lone surrogate)") from None
        return value

    @field_validator("outputs")
    @classmethod
    def _outputs(cls, values: list[str]) -> list[str]:
        return [cls._text(v) for v in values]


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
        default=None, alias="executedAt", description="When the cell was executed (RFC 3339)."
    )
    gen_trace_id: str | None = Field(
        default=None, alias="genTraceId", description="Trace id of the generation request."
    )
    exec_trace_ids: list[str] = Field(
        default_factory=list, alias="execTraceIds", description="Trace ids of the executions."
    )
    eval_mode: bool = Field(
        default=False, alias="evalMode", description="True for blocks produced by evaluation runs."
    )
    suggestion_status: Literal["Accepted", "Rejected", "Unknown"] | None = Field(
        default=None, alias="suggestionStatus", description="What the person did with the suggestion."
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

    type: str = Field(description="Type of the condition, for example Ready or Learned.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason for the condition's last transition.")
    message: str = Field(default="", description="Human-readable details.")
    last_transition_time: str = Field(
        alias="lastTransitionTime", description="When the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The generation the condition was set for."
    )


class BlockStatus(Resource):
    """What the controller concluded about a Block."""

    conditions: list[Condition] = Field(default_factory=list, description="Ready and Learned conditions.")
    observed_generation: int | None = Field(
        default=None, alias="observedGeneration", description="The generation last reconciled."
    )
    example_ref: str | None = Field(
        default=None, alias="exampleRef", description="Name of the Example learned from this Block."
    )


class BlockRef(Resource):
    """The Block an Example was learned from."""

    name: str = Field(description="Name of the Block.")
    uid: str = Field(default="", description="UID of the Block.")


class ExampleSpec(Resource):
    """A few-shot example: the context (query) and what the person actually ran (answer)."""

    query: Doc = Field(description="The notebook context of the Block.")
    answer: list[Cell] = Field(description="The executed cell.")
    block_ref: BlockRef = Field(alias="blockRef", description="The Block this Example was learned from.")


class ExampleStatus(Resource):
    """The embedding of an Example, kept where the index sidecar can watch it."""

    embedding: str | None = Field(
        default=None, description="Base64 of the little-endian float32 embedding vector."
    )
    embedding_dim: int | None = Field(default=None, alias="embeddingDim", description="Vector dimension.")
    embedding_model: str | None = Field(
        default=None, alias="embeddingModel", description="Embedder and model that made the vector."
    )
    text_hash: str | None = Field(
        default=None, alias="textHash", description="Hash of the embedded text and model: detects staleness."
    )
    embedded_at: str | None = Field(default=None, alias="embeddedAt", description="When it was embedded.")
    source_changed_at: str | None = Field(
        default=None,
        alias="sourceChangedAt",
        description="When the Block last changed; the index measures learning latency from it.",
    )
    conditions: list[Condition] = Field(default_factory=list, description="The Embedded condition.")
