"""One settings object for the whole product (env prefix ``SNAPSHOP_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.store.base import HnswOptions

# Values copied from examples and docs; a production deployment must not run with one of them.
PLACEHOLDER_ADMIN_KEYS = frozenset(
    {"change-me", "changeme", "changethis", "admin", "secret", "password", "snapshop", "test"}
)
MIN_ADMIN_KEY_CHARS = 16


def admin_key_is_real(key: SecretStr | None) -> bool:
    if key is None:
        return False
    value = key.get_secret_value()
    return len(value) >= MIN_ADMIN_KEY_CHARS and value.strip().lower() not in PLACEHOLDER_ADMIN_KEYS


class Settings(BaseSettings):
    """Everything configurable; every file the product writes lives under ``data_dir``."""

    model_config = SettingsConfigDict(env_prefix="SNAPSHOP_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Where the store, models and logs live."
    )
    model: Path | None = Field(
        default=None, description="Model bundle directory; default: <data-dir>/models/default."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="ONNX Runtime provider: auto takes CUDA when it is usable."
    )
    threads: int | None = Field(default=None, description="ONNX Runtime intra-op threads.")
    model_runs: int | None = Field(
        default=None,
        ge=1,
        description="Model runs at once; more wait their turn (default: no cap. On 2 cores a "
        "cap of 1 lowered 8-client throughput: runs overlap the engine's searches).",
    )
    thread_spinning: bool = Field(
        default=False,
        description="Let ONNX Runtime's idle intra-op threads busy-wait for work (default: "
        "off; on 2 cores their spinning took the cores the engine and the other tower need).",
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="Images per inference batch.")
    rrf_k: int | None = Field(
        default=None,
        ge=1,
        description="RRF k of the built-in default profile (default: its own, 1).",
    )
    max_k: int = Field(default=100, ge=1, description="Largest k a search may ask for.")
    micro_batch: bool = Field(
        default=False,
        description="Share model runs between concurrent queries (see snapshop bench search).",
    )
    max_window: int = Field(
        default=1_000, ge=1, description="Largest offset + k: how deep paging may go."
    )
    max_upload_mb: float = Field(default=10.0, gt=0, description="Largest query image accepted.")
    max_body_kb: int = Field(
        default=1_024, ge=1, description="Largest request body of the other (JSON) routes."
    )
    max_image_megapixels: float = Field(
        default=40.0,
        gt=0,
        description="Largest query photo, in megapixels, checked from its header before decoding.",
    )
    max_decodes: int = Field(
        default=4, ge=1, description="Query photos decoded at once; more wait their turn."
    )
    max_concurrent_requests: int = Field(
        default=64, ge=1, description="Requests in flight; beyond it 503 with Retry-After."
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="A search running longer is answered 504."
    )
    search_rate_limit: str | None = Field(
        default=None,
        description="Per-client limit on the public search routes, e.g. '10/second;300/minute' "
        "(the `limits` notation); unset = no limit.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins that may call the API from a browser; empty = same-origin only.",
    )
    frontend_dir: Path = Field(
        # beside the package in a checkout; an installed copy points it elsewhere (Dockerfile)
        default=Path(__file__).resolve().parents[1] / "frontend",
        description="The web pages (index.html, console.html, static/).",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    index_threshold_kb: int = Field(
        default=10_000,
        ge=1,
        description="Collections with fewer KB of vectors than this are searched exactly.",
    )
    hnsw_m: int = Field(
        default=HnswOptions.m,
        ge=4,
        le=128,
        description="HNSW links per node of a new collection (an existing one keeps its own).",
    )
    hnsw_ef_construct: int = Field(
        default=HnswOptions.ef_construct,
        ge=4,
        le=4_096,
        description="HNSW build beam of a new collection: a better graph, a slower build.",
    )
    hnsw_ef: int = Field(
        default=HnswOptions.ef,
        ge=1,
        le=4_096,
        description="HNSW search beam of every dense search: recall against latency "
        "(bench/README.md has the curve).",
    )
    hnsw_ef_large: int = Field(
        default=HnswOptions.ef_large,
        ge=1,
        le=4_096,
        description="HNSW search beam of collections of hnsw_large_from points or more.",
    )
    hnsw_large_from: int = Field(
        default=HnswOptions.large_from,
        ge=0,
        description="Collections of this many points or more search with hnsw_ef_large, "
        "and without ACORN.",
    )
    hnsw_acorn: float = Field(
        default=HnswOptions.acorn_max_selectivity,
        ge=0.0,
        le=1.0,
        description="Filtered searches of smaller collections use ACORN when the filter "
        "matches at most this share of the points (0: never).",
    )
    hnsw_full_scan_kb: int = Field(
        default=HnswOptions.full_scan_kb,
        ge=1,
        description="A filtered search whose matches hold at most this many KB of the searched "
        "vectors scans them exactly instead of walking the graph (every collection).",
    )
    hnsw_graph_blocks: int = Field(
        default=HnswOptions.graph_blocks,
        ge=0,
        description="A new collection splits each category into this many hashed blocks that "
        "the graph links within, so filtered walks reach every part of a category (0: none).",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="A Qdrant server or cluster (http(s)://host:6333): the store is a collection "
        "there instead of the embedded engine under <data-dir>/qdrant.",
    )
    qdrant_path: Path | None = Field(
        default=None,
        description="qdrant-client's local mode in this folder: the server backend without a "
        "server, for tests and demos (one process, exact search; not for production).",
    )
    qdrant_api_key: SecretStr | None = Field(
        default=None, description="API key of the Qdrant server (header api-key)."
    )
    qdrant_collection: str = Field(
        default="snapshop",
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Collection (or alias) of the catalog on the Qdrant server.",
    )
    qdrant_prefer_grpc: bool = Field(
        default=False, description="Talk gRPC to the Qdrant server instead of REST."
    )
    qdrant_grpc_port: int = Field(default=6334, ge=1, le=65535)
    qdrant_timeout_s: int = Field(
        default=10, ge=1, description="A Qdrant server call running longer fails (503)."
    )
    qdrant_shard_number: int | None = Field(
        default=None, ge=1, description="Shards of a new collection (default: the server's)."
    )
    qdrant_replication_factor: int | None = Field(
        default=None, ge=1, description="Copies of each shard in a cluster (default: the server's)."
    )
    qdrant_on_disk_payload: bool | None = Field(
        default=None, description="Keep payloads on disk, not in RAM (default: the server's)."
    )
    qdrant_scalar_quantization: bool = Field(
        default=False,
        description="int8 copies of the dense vectors in RAM (4x smaller); hits are rescored "
        "with the full vectors. For the embedded store too (the originals then stay on disk, "
        "memory-mapped); applies to collections created from then on.",
    )
    swap_poll_s: float = Field(
        default=2.0,
        ge=0,
        description="How often the API reads which collection is live, to follow a model swap "
        "made by another process (0: only swaps made through this server).",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API server processes (`snapshop serve`); more than 1 needs a Qdrant "
        "server (the embedded store admits one process).",
    )
    env: Literal["development", "production"] = Field(
        default="development",
        description="production refuses to start without a real admin key.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="Key for /v1/admin/* (header X-API-Key); unset = admin API disabled.",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="serve's log lines: text (for a terminal) or json (one object per line, "
        "for a log collector).",
    )

    @model_validator(mode="after")
    def _production_needs_a_real_admin_key(self) -> Settings:
        if self.env == "production" and not admin_key_is_real(self.admin_key):
            raise ValueError(
                "SNAPSHOP_ENV=production needs SNAPSHOP_ADMIN_KEY set to a secret of at "
                f"least {MIN_ADMIN_KEY_CHARS} characters (not a placeholder such as 'change-me'); "
                'generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return self

    @model_validator(mode="after")
    def _one_qdrant_location(self) -> Settings:
        if self.qdrant_url and self.qdrant_path is not None:
            raise ValueError("set SNAPSHOP_QDRANT_URL or SNAPSHOP_QDRANT_PATH, not both")
        return self

    @field_validator("qdrant_url")
    @classmethod
    def _qdrant_url_is_http(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"qdrant_url {value!r} is not an http(s) URL such as http://localhost:6333"
            )
        return value

    @field_validator("search_rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            parse_many(value)
        except ValueError as exc:
            raise ValueError(
                f"search_rate_limit {value!r} is not a rate such as '10/second;300/minute'"
            ) from exc
        return value

    @property
    def hnsw(self) -> HnswOptions:
        return HnswOptions(
            m=self.hnsw_m,
            ef_construct=self.hnsw_ef_construct,
            ef=self.hnsw_ef,
            full_scan_kb=self.hnsw_full_scan_kb,
            ef_large=self.hnsw_ef_large,
            large_from=self.hnsw_large_from,
            acorn_max_selectivity=self.hnsw_acorn,
            graph_blocks=self.hnsw_graph_blocks,
        )

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "qdrant"

    @property
    def profiles_path(self) -> Path:
        return self.data_dir / "profiles.sqlite"

    @property
    def judgements_path(self) -> Path:
        return self.data_dir / "judgements.sqlite"

    @property
    def querysets_path(self) -> Path:
        return self.data_dir / "querysets.sqlite"

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "thumbs"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def model_dir(self) -> Path:
        return self.model if self.model is not None else self.models_dir / "default"
