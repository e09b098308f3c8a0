"""The text that is embedded for a Block's context, and for a search query given as cells.

Foyle embedded whole notebooks at first, and long documents silently broke learning and retrieval
(its issues #260 and #269). Like its fix, we embed only the cells just before the executed cell:
the last cell, and the contiguous markup cells before it, rendered as markdown, capped in size.
"""

from __future__ import annotations

from collections.abc import Sequence

from blocklearn.resources.models import Cell

# About a thousand tokens: long enough for a request and its context, short enough for any embedder.
MAX_QUERY_CHARS = 4000


def render_cell(cell: Cell) -> str:
    if cell.kind == "code":
        return f"```{cell.language}\n{cell.contents.strip()}\n```"
    return cell.contents.strip()


def _window(cells: Sequence[Cell]) -> Sequence[Cell]:
    """The cells that make the query: the last one and the contiguous markup cells before it."""
    start = len(cells) - 1
    while start > 0 and cells[start - 1].kind == "markup":
        start -= 1
    return cells[max(start, 0) :]


def query_text(cells: Sequence[Cell], limit: int = MAX_QUERY_CHARS) -> tuple[str, bool]:
    """Render the cells that make the query; returns the text and whether it was truncated."""
    text = "\n\n".join(render_cell(c) for c in _window(cells) if c.contents.strip())
    if len(text) <= limit:
        return text, False
    # Keep the end: the cells nearest to the executed one carry the request.
    return text[-limit:], True


def query_cells(cells: Sequence[Cell], limit: int = MAX_QUERY_CHARS) -> list[Cell]:
    """The context an Example keeps: the cells `query_text` renders, without outputs (never
    rendered), and cut where the text is cut, so that `query_text` of the result is the same text,
    truncated flag included (tests/test_embedding.py checks it on arbitrary cells)."""
    window = [c.model_copy(update={"outputs": []}) for c in _window(cells) if c.contents.strip()]
    rendered = [render_cell(c) for c in window]
    after = 0  # length of the text the cells after this one render, separators included
    for i in range(len(window) - 1, -1, -1):
        length = len(rendered[i]) + (after + 2 if i < len(window) - 1 else 0)
        if length > limit:
            # This cell holds the cut: keep its end, one character beyond the limit so that the
            # text is still truncated at the same place (and counted as truncated).
            need = max(limit + 1 - (length - len(rendered[i])), 1)
            return [_cut_cell(window[i], need), *window[i + 1 :]]
        after = length
    return window


def _cut_cell(cell: Cell, need: int) -> Cell:
    """The cell shortened from its start so that its rendering still ends with the same `need`
    characters; rendering strips the contents, so the cut starts on a non-blank character."""
    text = cell.contents.strip()
    if cell.kind == "code":
        need -= len("\n```")  # the closing fence is always rendered
        if need > len(text):
            return cell  # the cut falls in the opening fence: keep the whole cell
        need = max(need, 1)  # a code cell renders only when it holds something
    start = len(text) - need
    while start > 0 and text[start].isspace():
        start -= 1
    return cell.model_copy(update={"contents": text[start:]})


def normalise_command(command: str) -> str:
    """Commands compare equal when they differ only in whitespace."""
    return " ".join(command.split())
