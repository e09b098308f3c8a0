"""`blocklearn search`: ask the index for the past corrections nearest to a request."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def search(
    url: str, query: str, k: int, namespace: str | None, token: str | None = None, timeout: float = 30
) -> dict[str, Any]:
    """Search one namespace, or all of them with namespace=None (if the index allows it)."""
    body: dict[str, Any] = {"query": query, "k": k}
    if namespace:
        body["namespace"] = namespace
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/search", data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            result: dict[str, Any] = json.load(resp)
            return result
    except urllib.error.HTTPError as exc:
        try:
            message = json.load(exc).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise SystemExit(f"blocklearn search: the index answered {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise SystemExit(f"blocklearn search: cannot reach the index at {url}: {exc.reason}") from None


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_table(result: dict[str, Any]) -> str:
    rows = [("SCORE", "NAMESPACE/NAME", "QUERY", "ANSWER")]
    for hit in result["results"]:
        cells = hit.get("query", {}).get("cells", [])
        query = cells[-1]["contents"] if cells else ""
        answer = " ; ".join(c.get("contents", "") for c in hit.get("answer", []))
        rows.append(
            (
                f"{hit['score']:.3f}",
                f"{hit['namespace']}/{hit['name']}",
                _one_line(query, 48),
                _one_line(answer, 60),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(f"({len(result['results'])} of {result['indexSize']} examples, model {result['model']})")
    return "\n".join(lines)
