"""Keeps the index equal to the Examples: applies each change an informer reports.

Pure apart from the clock: no network here. The informer (`blocklearn.runtime.informer`) lists and
watches the Examples, reports only what changed (a relist skips what the index has applied at the
same resourceVersion) and, after a gap, reports what was deleted in it; this applies each report.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from blocklearn import metrics
from blocklearn.embed import Matrix
from blocklearn.embed.codec import decode
from blocklearn.embed.text import query_text
from blocklearn.index.core import Entry, ExampleIndex, IndexMismatchError
from blocklearn.resources.models import ExampleSpec
from blocklearn.runtime.objects import parse_rfc3339

log = logging.getLogger("blocklearn.index.sync")


def example_id(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def query_of(obj: Mapping[str, Any]) -> str | None:
    """The text the lexical channel indexes and a search result shows: the Example's query as the
    controller embeds it; None when the spec is not a valid Example's."""
    try:
        spec = ExampleSpec.model_validate(obj.get("spec") or {})
    except ValidationError:
        return None
    return query_text(spec.query.cells)[0]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def to_entry(obj: Mapping[str, Any], text: str, current: bool) -> Entry:
    """What the index keeps of a valid Example: no more than a search returns."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    occurrences = status.get("occurrences")
    return Entry(
        namespace=sys.intern(str(meta["namespace"])),  # a few namespaces, shared by every row
        name=str(meta["name"]),
        query=text,
        answer_json=_compact(spec.get("answer") or []),
        block_ref_json=_compact(spec.get("blockRef") or {}),
        occurrences=occurrences if isinstance(occurrences, int) and occurrences >= 1 else 1,
        current=current,
    )


class IndexSync:
    """Applies Example states to the index."""

    def __init__(self, index: ExampleIndex, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.clock = clock

    def apply(self, obj: Mapping[str, Any], deleted: bool = False, live: bool = True) -> str:
        """Upsert or remove one Example; returns what was done. `live` events measure latency (not
        the first list, whose Examples were learned before the index started).

        Every valid Example is searchable by its text; its vector joins when it is of the index's
        model (during a model switch, or before the controller embeds it, it has none)."""
        id_ = example_id(obj)
        text = None if deleted else query_of(obj)
        if text is None:
            return "deleted" if self.index.delete(id_) else "ignored"
        status = obj.get("status") or {}
        vector, result = self._vector(id_, status)
        current = result == "upserted" and status.get("embeddingModel") == self.index.model
        known = self.index.entry(id_)
        self.index.upsert(id_, to_entry(obj, text, current), text, vector)
        # Learned: this text searchable as its model embedded it, for the first time.
        learned = current and (known is None or not known.current or known.query != text)
        changed_at = parse_rfc3339(status.get("sourceChangedAt"))
        if live and learned and changed_at is not None:
            metrics.learning_latency_seconds.observe(max(0.0, self.clock() - changed_at.timestamp()))
        return result

    def on_event(
        self, kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, live: bool
    ) -> None:
        """An informer's report: apply it, then publish the index's size (once the first list is
        in: the process publishes it then)."""
        obj = new if new is not None else old
        if obj is not None:
            self.apply(obj, deleted=kind == "DELETED", live=live)
            if live:
                publish(self.index)

    def _vector(self, id_: str, status: Mapping[str, Any]) -> tuple[Matrix | None, str]:
        """The Example's vector if it is one of the index's model, and what became of it."""
        if not self.index.dim:
            return None, "upserted"  # the hashing setting: the text is all there is
        if not status.get("embedding"):
            return None, "text-only"
        if status.get("embeddingModel") != self.index.model:
            return None, "text-only"
        try:
            return self.index.check(decode(status["embedding"], self.index.dim), self.index.model), "upserted"
        except (ValueError, IndexMismatchError) as exc:
            log.warning("Skipped an unusable embedding, kept the text: id=%s error=%s", id_, exc)
            return None, "rejected"


def publish(index: ExampleIndex) -> None:
    """The index's size and how much of it has a current vector (progress of a model switch)."""
    counts = index.vector_counts()
    metrics.index_size.set(counts.current + counts.missing)
    metrics.index_vectors.labels("current").set(counts.current)
    metrics.index_vectors.labels("missing").set(counts.missing)
    metrics.index_vectors_current_ratio.set(counts.ratio)
