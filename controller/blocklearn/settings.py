"""All of Blocklearn's own configuration in one model, read from BLOCKLEARN_* env vars and flags."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOCKLEARN_", extra="ignore")

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch; empty watches all namespaces."
    )
    embedder: Literal["semantic", "hashing", "openai"] = Field(
        default="semantic",
        description="semantic (all-MiniLM-L6-v2 on onnxruntime), hashing (no model) or openai (an API).",
    )
    semantic_threads: int = Field(
        default=1, ge=1, le=64, description="Cores onnxruntime uses for one batch of the semantic embedder."
    )
    model_cache_dir: str | None = Field(
        default=None,
        description="Where the semantic embedder caches its built int8 model; default ~/.cache/blocklearn.",
    )
    # float16 by default: a semantic Example is 3.8 KB as stored, not 4.8 KB, and dev hit@5 is unchanged
    # (bench/embedder_speed.py); readers infer the format, so float32 Examples keep working.
    embedding_dtype: Literal["float32", "float16"] = Field(
        default="float16", description="How Examples store their vector: float16 is half of float32's bytes."
    )
    hashing_dim: int = Field(default=4096, ge=16, le=65536, description="Dimension of the hashing embedder.")
    openai_base_url: str = Field(default="https://api.openai.com/v1", description="OpenAI-compatible API.")
    openai_model: str = Field(default="text-embedding-3-small", description="Embedding model name.")
    openai_dimensions: int | None = Field(
        default=None,
        ge=1,
        le=65536,
        description="Ask for vectors this long (text-embedding-3 models shorten theirs): 256 keeps a 1,536-d"
        " model's embedding in 1.4 KiB of base64 instead of 8 KiB.",
    )
    openai_api_key_env: str = Field(default="OPENAI_API_KEY", description="Env var holding the API key.")
    openai_api_key_file: str | None = Field(default=None, description="File (a mounted Secret) with the key.")
    embed_timeout_seconds: float = Field(default=30.0, gt=0)
    embed_batch_size: int = Field(default=64, ge=1, le=2048)
    embed_batch_wait_seconds: float = Field(default=0.05, ge=0, description="How long a batch waits to fill.")
    reembed_per_second: float = Field(
        default=20.0, gt=0, description="After a model switch: Examples re-embedded (written) per second."
    )
    learn_without_suggestion: bool = False
    learn_from_failures: bool = False
    secrets: Literal["redact", "skip"] = Field(
        default="redact", description="Credentials in cells: replace by placeholders, or skip the Block."
    )
    cross_namespace_search: bool = Field(
        default=False, description="Allow searches without a namespace (across every watched namespace)."
    )
    index_token_file: str | None = Field(
        default=None,
        description="File (a mounted Secret) with the bearer token POST /v1/search requires; none: open.",
    )
    index_token_review: bool = Field(
        default=False,
        description="Accept Kubernetes ServiceAccount tokens on POST /v1/search, checked with a TokenReview.",
    )
    index_token_audiences: list[str] = Field(
        default_factory=list,
        description="Audiences a ServiceAccount token must be issued for; empty: the API server's.",
    )
    index_trusted_subjects: list[str] = Field(
        default_factory=list,
        description="Users or groups that may search any namespace; other ServiceAccounts only their own.",
    )
    # Bounded growth (README, "Capacity"): the defaults keep 500 people at 50 executed cells a day
    # under 512 MiB of store.
    block_ttl_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="Delete a Block this long after it was decided (0: keep Blocks); its Example stays.",
    )
    max_examples_per_namespace: int = Field(
        default=1000,
        ge=0,
        description="Evict the least recently seen Examples no living Block teaches beyond this many in a"
        " namespace (0: no cap).",
    )
    example_max_age_days: float = Field(
        default=0.0,
        ge=0,
        description="Evict Examples no living Block teaches once not seen for this many days (0: no limit).",
    )
    store_budget_bytes: int = Field(
        default=0,
        ge=0,
        description="Bytes of store Blocklearn may use, exported as blocklearn_store_budget_bytes for the"
        " BlocklearnStoreNearBudget alert (0: none).",
    )
    resync_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often the controller replays its cache, reconciling what did not end converged.",
    )
    relist_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="Safety net: the informers list everything again this often (besides after a 410 Gone"
        " or a watch that keeps failing).",
    )
    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=300.0, gt=0)
    # Leader election (controller-runtime's flags and client-go's defaults): the chart turns it on so
    # that two replicas are safe; a single local controller needs none.
    leader_election: bool = Field(default=False, description="Reconcile only while holding a Lease.")
    leader_election_namespace: str | None = Field(
        default=None, description="Namespace of the Lease; none: the pod's own, else `default`."
    )
    leader_election_name: str = Field(default="blocklearn-controller", description="Name of the Lease.")
    leader_election_identity: str | None = Field(
        default=None, description="This replica's name in the Lease; none: host name and a random suffix."
    )
    lease_duration_seconds: float = Field(default=15.0, gt=0)
    renew_deadline_seconds: float = Field(default=10.0, gt=0)
    retry_period_seconds: float = Field(default=2.0, gt=0)
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="0 disables the metrics server.")
    log_format: Literal["text", "json"] = "text"

    def policy_kwargs(self) -> dict[str, Any]:
        return {
            "learn_without_suggestion": self.learn_without_suggestion,
            "learn_from_failures": self.learn_from_failures,
            "secrets": self.secrets,
        }
