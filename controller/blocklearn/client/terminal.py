"""`blocklearn search`: ask the index for the past corrections nearest to a request."""

from __future__ import annotations

from blocklearn.client import BlocklearnError, Client, SearchResponse
from blocklearn.printable import printable

__all__ = ["format_table", "printable", "search"]


def search(
    url: str,
    query: str,
    k: int,
    namespace: str | None,
    token: str | None = None,
    timeout: float = 30,
    distinct: bool = True,
    token_file: str | None = None,
) -> SearchResponse:
    """Search one namespace, or all of them with namespace=None (if the index allows it)."""
    try:
        with Client(url, token, token_file=token_file, timeout=timeout, retries=2) as client:
            return client.search(
                query, k=k, namespace=namespace, all_namespaces=namespace is None, distinct=distinct
            )
    except BlocklearnError as exc:
        raise SystemExit(f"blocklearn search: {printable(str(exc))}") from None


def _one_line(text: str, width: int) -> str:
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_table(result: SearchResponse) -> str:
    rows = [("SCORE", "SUPPORT", "NAMESPACE/NAME", "QUERY", "ANSWER")]
    for hit in result.results:
        query = hit.query.rsplit("\n\n", 1)[-1]  # the request: the last of the rendered cells
        answer = " ; ".join(c.contents for c in hit.answer)
        rows.append(
            (
                f"{hit.score:.3f}",
                str(hit.support),
                printable(f"{hit.namespace}/{hit.name}"),
                _one_line(query, 48),
                _one_line(answer, 60),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(f"({len(result.results)} of {result.index_size} examples, model {printable(result.model)})")
    return "\n".join(lines)
