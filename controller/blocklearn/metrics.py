"""Prometheus metrics, named like controller-runtime's with a blocklearn_ prefix; labels are bounded."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from blocklearn import __version__

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

build_info = Info("blocklearn_build", "Version, embedder and model of this process.")

reconcile_total = Counter(
    "blocklearn_reconcile_total", "Reconciles by resource and result.", ["resource", "result"]
)
reconcile_errors_total = Counter("blocklearn_reconcile_errors_total", "Failed reconciles.", ["resource"])
reconcile_duration_seconds = Histogram(
    "blocklearn_reconcile_duration_seconds", "Time to reconcile one object.", ["resource"], buckets=_SECONDS
)
reconcile_retries_total = Counter(
    "blocklearn_reconcile_retries_total", "Reconciles that will be retried after a backoff.", ["resource"]
)
block_decisions_total = Counter(
    "blocklearn_block_decisions_total", "What the learning rule decided, by reason.", ["reason"]
)
suggestions_total = Counter(
    "blocklearn_suggestions_total",
    "Blocks by what became of the suggestion (outcome) and of the examples shown with it (retrieval),"
    " counted when a Block's pair first takes a value or changes.",
    ["outcome", "retrieval"],
)
examples_embedded_total = Counter("blocklearn_examples_embedded_total", "Examples embedded.")
embedding_duration_seconds = Histogram(
    "blocklearn_embedding_duration_seconds", "Time of one embedding batch.", buckets=_SECONDS
)
embedding_batch_size = Histogram(
    "blocklearn_embedding_batch_size",
    "Texts per embedding batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
embedder_errors_total = Counter("blocklearn_embedder_errors_total", "Embedder failures.", ["reason"])
# controller-runtime's leader_election_master_status: 1 on the replica that may reconcile.
leader = Gauge("blocklearn_leader_election_status", "1 while this controller holds the leader Lease, else 0.")
embedding_backlog = Gauge("blocklearn_embedding_backlog", "Examples waiting for an embedding.")
redactions_total = Counter(
    "blocklearn_redactions_total", "Secrets replaced by placeholders before an Example was written.", ["kind"]
)
examples_current = Gauge(
    "blocklearn_examples_current", "Examples whose embedding is current, as of the last resync."
)
query_truncations_total = Counter(
    "blocklearn_query_truncations_total", "Contexts cut to the embedding size limit."
)

workqueue_depth = Gauge("blocklearn_workqueue_depth", "Keys waiting in a work queue.", ["name"])
workqueue_retries_total = Counter(
    "blocklearn_workqueue_retries_total", "Keys put back in a work queue after a failure.", ["name"]
)
resync_passes_total = Counter("blocklearn_resync_passes_total", "Resync passes completed.")
resync_duration_seconds = Gauge(
    "blocklearn_resync_duration_seconds", "How long the last resync pass took, listing included."
)
resync_last_success_timestamp_seconds = Gauge(
    "blocklearn_resync_last_success_timestamp_seconds", "When the last resync pass ended."
)
api_writes_total = Counter(
    "blocklearn_api_writes_total", "Writes the controller made, by resource and verb.", ["resource", "verb"]
)
# What Blocklearn keeps in the API (etcd), as the controller's cache holds it: kind is block|example.
stored_objects = Gauge("blocklearn_stored_objects", "Blocks and Examples stored, by kind.", ["kind"])
stored_bytes = Gauge(
    "blocklearn_stored_bytes",
    "JSON bytes of the Blocks and Examples stored (embeddings included), by kind.",
    ["kind"],
)
store_budget_bytes = Gauge(
    "blocklearn_store_budget_bytes", "The store budget setting (0: none); BlocklearnStoreNearBudget reads it."
)
blocks_expired_total = Counter("blocklearn_blocks_expired_total", "Blocks deleted when their TTL was up.")
examples_evicted_total = Counter(
    "blocklearn_examples_evicted_total",
    "Examples deleted to keep a namespace under its cap (cap) or not seen for the maximum age (max_age).",
    ["reason"],
)
events_total = Counter("blocklearn_events_total", "Kubernetes Events posted, by reason.", ["reason"])
embedding_cpu_seconds_total = Counter(
    "blocklearn_embedding_cpu_seconds_total", "CPU time the embedding model used in this process."
)

index_size = Gauge("blocklearn_index_size", "Examples in the index.")
index_vectors = Gauge(
    "blocklearn_index_vectors",
    "Examples in the index with a vector of its model (current) and without one (missing: searched by"
    " text alone until re-embedded).",
    ["state"],
)
index_vectors_current_ratio = Gauge(
    "blocklearn_index_vectors_current_ratio",
    "Share of the index's examples with a vector of its model; below 1 while a model switch proceeds.",
)
index_ready = Gauge("blocklearn_index_ready", "1 once the first full list is in the index.")
search_total = Counter("blocklearn_search_total", "Searches by result.", ["result"])
search_duration_seconds = Histogram(
    "blocklearn_search_duration_seconds", "Time to answer one search.", buckets=_SECONDS
)
watch_restarts_total = Counter("blocklearn_index_watch_restarts_total", "Watch streams restarted.")
relists_total = Counter(
    "blocklearn_index_relists_total",
    "Full lists that made an informer's cache (the index's, in the index) equal to the API's.",
)
learning_latency_seconds = Histogram(
    "blocklearn_learning_latency_seconds",
    "From a Block's change to its Example being searchable.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900),
)


def set_build_info(embedder_model: str, component: str) -> None:
    build_info.info({"version": __version__, "model": embedder_model, "component": component})
