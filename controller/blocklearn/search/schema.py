"""The search API's request and response shapes: what the index validates, what the client parses,
and what the OpenAPI document describes (`blocklearn.search.openapi`). No HTTP server in here, so the
client imports it without aiohttp's server or the index."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from blocklearn.embed.text import query_text
from blocklearn.index.core import MAX_K
from blocklearn.resources.models import MAX_CELL_CHARS, MAX_CELLS, BlockRef, Cell, plain_text

DEFAULT_K = 3  # Foyle's number of few-shot examples
# A text query is one markup cell: the same limits as a cell's contents.
QueryText = Annotated[str, Field(max_length=MAX_CELL_CHARS), AfterValidator(plain_text)]


def _query_kind(value: object) -> str | None:
    if isinstance(value, str):
        return "text"
    return "cells" if isinstance(value, dict | CellsQuery) else None


class CellsQuery(BaseModel):
    """A query given as notebook cells, as in a Block's `spec.doc`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    cells: list[Cell] = Field(
        min_length=1,
        max_length=MAX_CELLS,
        description=f"The notebook context, oldest cell first; at most {MAX_CELLS}, as in a Block's doc.",
    )


class SearchRequest(BaseModel):
    """POST /v1/search. Strict: `"k": "3"` or `"k": true` is an error, not a 3 or a 1."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    # Chosen by the JSON type, so that an error names the one shape the client meant.
    query: Annotated[
        Annotated[QueryText, Tag("text")] | Annotated[CellsQuery, Tag("cells")],
        Discriminator(
            _query_kind,
            custom_error_type="query_type",
            custom_error_message="must be a string or an object with cells",
        ),
    ] = Field(description="Text, or notebook cells as in a Block's doc.")
    k: int = Field(default=DEFAULT_K, ge=1, le=MAX_K, description="How many examples to return.")
    namespace: str | None = Field(
        default=None, description="Only examples from this namespace (required unless cross-namespace)."
    )
    min_score: float = Field(
        default=-1.0, ge=-1.0, le=1.0, alias="minScore", description="Leave out examples scoring less."
    )
    distinct: bool = Field(
        default=True,
        description="Return examples with distinct answers (whitespace-normalised), each with the"
        " number of corrections near the query that gave it (`support`); false returns the raw nearest"
        " examples.",
    )

    def text(self) -> str:
        """The text that is embedded: the same rendering as an Example's query."""
        if isinstance(self.query, str):
            return query_text([Cell(kind="markup", contents=self.query)])[0]
        return query_text(self.query.cells)[0]


def describe(exc: ValidationError) -> str:
    """A request's first errors in one line, each with the field it is in (never the input)."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


class SearchResult(BaseModel):
    """One past correction: the context it was made in (query) and what the person ran (answer)."""

    # Unknown fields are ignored, so a client keeps working when the index adds one.
    model_config = ConfigDict(populate_by_name=True)

    namespace: str = Field(description="Namespace of the Example.")
    name: str = Field(description="Name of the Example.")
    score: float = Field(description="Cosine similarity to the query, -1 to 1; higher is nearer.")
    support: int = Field(
        default=1,
        ge=1,
        description="How many corrections near the query gave this answer: the occurrences of the near"
        " examples with it (of this example alone, for raw results).",
    )
    query: str = Field(
        description="The context of the correction, as it was embedded: the cells just before the"
        " executed one, rendered as markdown."
    )
    answer: list[Cell] = Field(description="The cell the person executed.")
    block_ref: BlockRef = Field(alias="blockRef", description="The Block the Example was learned from.")


class SearchResponse(BaseModel):
    """The answer to POST /v1/search: best result first."""

    model_config = ConfigDict(populate_by_name=True)

    results: list[SearchResult] = Field(description="The nearest examples, best first.")
    model: str = Field(description="The embedder that made the index's vectors.")
    index_size: int = Field(
        alias="indexSize",
        ge=0,
        description="Examples the search covered: those of the namespace searched (all namespaces'"
        " for a cross-namespace search).",
    )


class ErrorResponse(BaseModel):
    """Every error status (400, 401, 403, 413, 415, 417, 502, 503) carries a message saying what is wrong."""

    error: str = Field(description="What went wrong, for a person.")
