"""Builds the configured objects from settings: sources, stores, embedders, the index and the LLM.

Settings hold values only; this is the one place that turns them into clients. `oncolit.resources`
holds the built objects the surfaces share (`Resources`: built on first use, closed once); commands
that need one thing only (a source, the index) call the builder here directly.

Heavy libraries (torch, qdrant, llama.cpp, httpx) are imported inside the builders, so importing this
module, and starting the CLI, stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.errors import ConfigError, LLMError, ModelNotFound
from ingest.source import Source
from oncolit import __version__
from oncolit.settings import Settings

if TYPE_CHECKING:
    from index.chunking import Chunker
    from index.embedder import ChunkingEmbedder
    from index.expansion import QueryExpander, SynonymTable
    from index.search import Reranker, Searcher
    from index.sparse import BM25Encoder
    from index.store import Store
    from index.sync import Annotator
    from synthesis.findings_models.answer_head import AnswerHead
    from synthesis.findings_models.answerer import AnswerModel
    from synthesis.findings_models.runtime import FindingsModels
    from synthesis.llm.base import LLM

_WARNED: set[str] = set()
log = logging.getLogger(__name__)

SOURCES = ("pubmed", "ctgov")
EMBEDDING_BACKENDS = ("sentence-transformers", "onnx", "e5")


@contextmanager
def open_source(name: str, settings: Settings) -> Iterator[Source]:
    if name == "pubmed":
        from ingest.pubmed import PubMedSource
        yield PubMedSource(settings.pubmed)
    elif name == "ctgov":
        import httpx

        from ingest.clinicaltrials import ClinicalTrialsSource
        with httpx.Client(timeout=settings.ctgov.retry.timeout, follow_redirects=True,
                          headers={"User-Agent": f"oncolit/{__version__}"}) as client:
            yield ClinicalTrialsSource(settings.ctgov, client)
    else:
        raise ConfigError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")


@dataclass
class IndexHandle:
    """Everything the index needs, built from settings: the store (collection opened), the embedder,
    the chunker matched to the embedder's window, the sparse encoder, the annotator that grades
    each record for the payload filters (the index may not import synthesis, so it travels here), and the
    synonym table that sync keeps beside the cursor (`<data dir>/index-state/<collection>.synonyms.sqlite`)
    with the expander that reads it."""

    store: Store
    embedder: ChunkingEmbedder
    chunker: Chunker
    encoder: BM25Encoder
    collection: str
    state_path: Path
    annotator: Annotator
    reranker: Reranker | None = None
    rerank_depth: int = 30
    synonyms: SynonymTable | None = None
    expander: QueryExpander | None = None
    expand_queries: bool = False
    rerank_by_default: bool = False

    def searcher(self) -> Searcher:
        from index.search import Searcher
        return Searcher(self.store, self.embedder, self.encoder, self.reranker, self.rerank_depth, self.expander,
                        self.expand_queries, self.rerank_by_default)


def make_expander(settings: Settings, table: SynonymTable) -> QueryExpander:
    """The query expander over `table`, with the `search.expansion_*` settings (the table loads on first use)."""
    from index.expansion import ExpansionConfig, QueryExpander

    s = settings.search
    return QueryExpander(table, ExpansionConfig(weight=s.expansion_weight, min_records=s.expansion_min_records,
                                                min_share=s.expansion_min_share, dense=s.expand_dense))


def make_reranker(settings: Settings) -> Reranker | None:
    """The configured reranker (`search.reranker`); its weights load on first use, not here."""
    from synthesis.rerank import load_reranker

    return load_reranker(settings.search.reranker, threads=settings.search.rerank_threads,
                         onnx_dir=settings.models_dir / "onnx")  # its ONNX export, when `index export-onnx` made one


def make_embedder(settings: Settings) -> ChunkingEmbedder:
    """The configured embedder behind the on-disk embedding cache."""
    from index.embedder import CachedEmbedder, OnnxEmbedder, SentenceTransformerEmbedder
    from index.embedder_lazy import lazily, onnx_twin

    emb = settings.embedding
    inner: ChunkingEmbedder
    # The model loads on the first embed (index.embedder_lazy); on the CPU a query is embedded by the ONNX export
    # of the same weights when there is one (`oncolit index export-onnx`), so a search never imports torch.
    if emb.backend == "sentence-transformers":
        twin = onnx_twin(emb.model_path, settings.models_dir / "onnx", batch_size=emb.batch_size, threads=emb.threads)
        inner = lazily(lambda: SentenceTransformerEmbedder(emb.model_path, device=emb.device, batch_size=emb.batch_size),
                       emb.model_path, query_twin=twin if emb.device == "cpu" else None)
    elif emb.backend == "onnx":
        inner = lazily(lambda: OnnxEmbedder(emb.model_path, onnx_dir=settings.models_dir / "onnx",
                                            batch_size=emb.batch_size, threads=emb.threads), emb.model_path)
    elif emb.backend == "e5":
        from index.embedder_e5 import E5Embedder  # its own module: loading it loads a C engine
        inner = E5Embedder(emb.model_path, threads=emb.threads)
    else:
        raise ConfigError(f"unknown embedding backend {emb.backend!r}; choose one of {', '.join(EMBEDDING_BACKENDS)}")
    return CachedEmbedder(inner, settings.data_dir / "cache" / "embeddings")


def export_onnx_model(settings: Settings) -> dict[str, Path]:
    """Export what a search runs to ONNX, once per weights, into `<models dir>/onnx` (needs torch and `onnx`):
    "embedder", the configured sentence-transformers model (its queries, and the onnx backend, then use it), and
    "reranker", the configured reranker when there is one."""
    from index.embedder import default_model_path, export_onnx

    emb = settings.embedding
    if emb.backend not in ("sentence-transformers", "onnx"):
        raise ConfigError(f"embedding.backend {emb.backend!r} has no ONNX export (it needs no torch already)")
    model_path = Path(emb.model_path).expanduser() if emb.model_path else default_model_path()
    onnx_dir = settings.models_dir / "onnx"
    try:
        out = {"embedder": export_onnx(model_path, onnx_dir)}
        reranker = make_reranker(settings)
        folder = getattr(reranker, "folder", None)
        if folder is not None:
            from synthesis.rerank.onnx import export_reranker

            out["reranker"] = export_reranker(folder, onnx_dir)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"the ONNX export needs the {exc.name!r} package: pip install 'oncolit[onnx]'") from exc
    return out


def make_store(settings: Settings) -> Store:
    """The configured vector store (no collection opened yet)."""
    ix = settings.index
    common: dict[str, Any] = dict(
        on_disk_vectors=ix.on_disk_vectors, hnsw_m=ix.hnsw_m, hnsw_ef_construct=ix.hnsw_ef_construct,
        full_scan_threshold=ix.full_scan_threshold, rrf_k=ix.rrf_k, hnsw_ef=ix.hnsw_ef, quantization=ix.quantization,
        quantization_always_ram=ix.quantization_always_ram, quantization_rescore=ix.quantization_rescore,
        quantization_oversampling=ix.quantization_oversampling, on_disk_payload=ix.on_disk_payload)
    if ix.backend == "edge":
        from index.store_edge import EdgeStore
        return EdgeStore(settings.index_dir, **common)
    if ix.backend == "qdrant":
        from index.store_qdrant import QdrantStore
        if not ix.qdrant_url:
            raise ConfigError("index.backend=qdrant needs ONCOLIT_INDEX__QDRANT_URL (e.g. http://qdrant:6333)")
        return QdrantStore(ix.qdrant_url, api_key=ix.qdrant_api_key, shard_number=ix.shard_number,
                           replication_factor=ix.replication_factor, **common)
    raise ConfigError(f"unknown index backend {ix.backend!r}; choose edge or qdrant")


def make_annotator() -> Annotator:
    """The grader every sync path fills `design` and `evidence_level` from: the rules-based grade (no
    LLM, no findings models), whose fingerprint tells the sync when stored grades are stale."""
    from synthesis.index_grades import GradeAnnotator

    return GradeAnnotator()


@contextmanager
def open_index(settings: Settings, *, embedder: ChunkingEmbedder | None = None) -> Iterator[IndexHandle]:
    """Open (creating if needed) the collection that matches the embedder and chunking settings. An
    `embedder` passed in stays the caller's to close. The embedded (edge) index has one writer at a time:
    its lock is held until the block ends, and a second process waits for it (`oncolit.owner.hold_index`)."""
    from oncolit.owner import hold_index

    if settings.index.backend != "edge":
        with _open_index(settings, embedder) as handle:
            yield handle
        return
    with hold_index(settings), _open_index(settings, embedder) as handle:
        yield handle


@contextmanager
def _open_index(settings: Settings, embedder: ChunkingEmbedder | None) -> Iterator[IndexHandle]:
    from index.chunking import Chunker, ChunkerConfig
    from index.expansion import SynonymTable
    from index.sparse import BM25Encoder
    from index.store import collection_name

    own_embedder = embedder is None
    embedder = embedder if embedder is not None else make_embedder(settings)
    ch = settings.chunking
    chunker = Chunker(ChunkerConfig(max_tokens=min(ch.max_tokens, getattr(embedder, "max_tokens", ch.max_tokens)),
                                    overlap_tokens=ch.overlap_tokens, max_title_tokens=ch.max_title_tokens),
                      count_tokens=embedder.token_counter())
    encoder = BM25Encoder()
    name = collection_name(embedder.name, embedder.dim, chunker.fingerprint, encoder.fingerprint)
    store = make_store(settings)
    state_dir = settings.data_dir / "index-state"
    synonyms = SynonymTable(state_dir / f"{name}.synonyms.sqlite")
    try:
        store.ensure_collection(name, embedder.dim)
        yield IndexHandle(store, embedder, chunker, encoder, name, state_dir / f"{name}.json", make_annotator(),
                          make_reranker(settings), settings.search.rerank_depth, synonyms,
                          make_expander(settings, synonyms), settings.search.expand_queries,
                          settings.search.rerank_by_default)
    finally:
        store.close()
        if own_embedder and hasattr(embedder, "close"):
            embedder.close()


def make_llm_from_settings(settings: Settings, backend: str | None = None, model: str | None = None, *,
                           extractive_if_missing: bool = False, **overrides: Any) -> LLM:
    """The one way to get "the LLM": the model the `[llm]` settings name, or `backend`/`model` given
    instead; always an object (`NoneLLM` for backend "none": `capabilities.generation` is false and callers
    use rules or quotes). A backend other than the configured one gets its own default model, not the
    configured backend's model name. `overrides` replace the backend options built from settings.

    `extractive_if_missing`: a configured (not explicitly asked-for) model that was never pulled degrades
    to `NoneLLM` with a warning instead of failing (what answering surfaces want: quotes, not an error)."""
    from synthesis.llm import BACKENDS, make_llm
    from synthesis.llm.none_backend import NoneLLM

    cfg = settings.llm
    chosen = backend or cfg.backend
    if chosen not in BACKENDS:
        raise LLMError(f"unknown LLM backend {chosen!r}; choose one of {', '.join(BACKENDS)}")
    if chosen == "none":
        return NoneLLM()
    options: dict[str, Any] = {}
    if chosen == "llamacpp":
        options.update({k: v for k, v in (("n_ctx", cfg.n_ctx), ("n_threads", cfg.n_threads)) if v})
    elif chosen == "openai":
        options.update({k: v for k, v in (("base_url", cfg.base_url), ("api_key", cfg.api_key)) if v})
        options["schema_mode"] = cfg.schema_mode
    elif chosen == "transformers" and cfg.adapter_dir:
        options["adapter_dir"] = cfg.adapter_dir
    options.update(overrides)
    try:
        return make_llm(chosen, model or (cfg.model if chosen == cfg.backend else None), settings.models_dir,
                        **options)
    except ModelNotFound as exc:
        if not extractive_if_missing or backend or model:
            raise
        if str(exc) not in _WARNED:  # once per process, however many resources a command opens
            _WARNED.add(str(exc))
            log.warning("%s; continuing without a language model: rule-based extraction and grading, "
                        "extractive answers and overviews (pull the model with `oncolit models pull`, or set "
                        "ONCOLIT_LLM__BACKEND=none to silence this)", exc)
        return NoneLLM()


def make_findings_models(settings: Settings) -> FindingsModels | None:
    """The fine-tuned findings models the `findings` settings name (loaded once per process), or None."""
    from synthesis.findings_models import load_findings_models

    return load_findings_models(settings.findings.models, settings.findings.threads)


def make_answer_model(settings: Settings) -> AnswerModel | AnswerHead | None:
    """The yes/no/maybe answer classifier the `findings` settings name (loaded once per process), or None."""
    from synthesis.findings_models import load_answer_model

    return load_answer_model(settings.findings.models, settings.findings.threads)
