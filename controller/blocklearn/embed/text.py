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


def query_text(cells: Sequence[Cell], limit: int = MAX_QUERY_CHARS) -> tuple[str, bool]:
    """Render the cells that make the query; returns the text and whether it was truncated."""
    if not cells:
        return "", False
    start = len(cells) - 1
    while start > 0 and cells[start - 1].kind == "markup":
        start -= 1
    text = "\n\n".join(render_cell(c) for c in cells[start:] if c.contents.strip())
    if len(text) <= limit:
        return text, False
    # Keep the end: the cells nearest to the executed one carry the request.
    return text[-limit:], True


def normalise_command(command: str) -> str:
    """Commands compare equal when they differ only in whitespace."""
    return " ".join(command.split())
