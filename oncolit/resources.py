"""The one set of resources every surface shares: the catalog, the curation policy, the index and the LLM.

    with open_resources(settings) as res:        # nothing is built yet
        res.catalog                              # the catalog (SQLite file or PostgreSQL)
        res.curation                             # librarians' policy over that catalog (exclusions, pins, queue)
        res.index                                # `IndexHandle`: Store, Embedder, chunker, sparse encoder
        res.searcher                             # hybrid search without librarian-excluded records
        res.llm                                  # an `LLM`, always an object (`NoneLLM` when extractive)
    # closed here, once, in the reverse order of building

Each resource is built the first time it is used (so `oncolit records show` never imports torch or
qdrant, and a digest run with nothing due never loads a model) by the builders in `oncolit.wiring`, and
closed when the block ends. Something passed in (`catalog=`, `embedder=`, `llm=`) is used as it is and
stays the caller's to close. The HTTP API builds everything up front with `load()`; its worker threads then
share it (the local LLM backends serialise their own calls, the embedding cache its SQLite connection).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

from oncolit.settings import Settings
from oncolit.wiring import (
    IndexHandle,
    make_answer_model,
    make_findings_models,
    make_llm_from_settings,
    open_index,
)

if TYPE_CHECKING:
    from index.embedder import ChunkingEmbedder
    from ingest.catalog import Catalog
    from ingest.curation import CuratedSearcher, Curation
    from ingest.records import Article, Trial
    from synthesis.findings_models.answer_head import AnswerHead
    from synthesis.findings_models.answerer import AnswerModel
    from synthesis.findings_models.runtime import FindingsModels
    from synthesis.llm.base import LLM

T = TypeVar("T")
NAMES = ("catalog", "curation", "index", "searcher", "llm", "findings_models", "answer_model")


def grading_evidence(record: Article | Trial) -> tuple[str, int] | None:
    """Evidence level and rank for the curation queue, from the rule-based grading (no model needed)."""
    from synthesis.grading import grade

    g = grade(record)
    return g.level, g.rank


@dataclass
class Resources:
    """Built from `settings` on first use; `close()` (or the `open_resources` block) releases what was built.

    `backend` / `model` choose the LLM instead of the `[llm]` settings. With `extractive_if_missing`
    (the default: what answering surfaces want) a configured model that was never pulled gives
    `NoneLLM` and a warning; commands that must not silently degrade (`oncolit extract`) turn it off.
    """

    settings: Settings
    given_catalog: Catalog | None = None
    given_embedder: ChunkingEmbedder | None = None
    given_llm: LLM | None = None
    backend: str | None = None
    model: str | None = None
    extractive_if_missing: bool = True
    _built: dict[str, object] = field(default_factory=dict, init=False, repr=False)
    _stack: ExitStack = field(default_factory=ExitStack, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    # ------------------------------------------------------------------ the resources
    @property
    def catalog(self) -> Catalog:
        return self._get("catalog", self._open_catalog)

    @property
    def curation(self) -> Curation:
        return self._get("curation", self._open_curation)

    @property
    def index(self) -> IndexHandle:
        return self._get("index", self._open_index)

    @property
    def searcher(self) -> CuratedSearcher:
        """The index's searcher behind the librarians' exclusions: excluded records never reach a reader."""
        return self._get("searcher", self._open_searcher)

    @property
    def llm(self) -> LLM:
        return self._get("llm", self._open_llm)

    @property
    def findings_models(self) -> FindingsModels | None:
        """The fine-tuned findings models (result sentences, I/C/O, direction), or None when `findings.models`
        is "none" or the artifacts are missing (extraction then runs the rules alone)."""
        return self._get("findings_models", lambda: make_findings_models(self.settings))

    @property
    def answer_model(self) -> AnswerModel | AnswerHead | None:
        """The yes/no/maybe answer classifier, or None."""
        return self._get("answer_model", lambda: make_answer_model(self.settings))

    # ------------------------------------------------------------------ lifecycle
    def built(self, name: str) -> bool:
        """Whether `name` (one of `NAMES`) has been built or given."""
        return name in self._built or getattr(self, f"given_{name}", None) is not None

    def load(self, *names: str) -> Resources:
        """Build `names` now (all of them by default), in the order given. The index's embedder, which otherwise
        loads its model on the first embed, is made ready for queries too (the HTTP API's first search)."""
        for name in names or NAMES:
            if name not in NAMES:
                raise ValueError(f"unknown resource {name!r}; one of {', '.join(NAMES)}")
            getattr(self, name)
            if name == "index":
                from index.embedder_lazy import prepare_queries

                prepare_queries(self.index.embedder)
        return self

    def close(self) -> None:
        """Close what was built here, in reverse order; given objects are left open. Idempotent."""
        with self._lock:
            self._built.clear()
            self._stack.close()

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ builders
    def _get(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return cast(T, self._built[name])  # what `build` returned for this name

    def _open_catalog(self) -> Catalog:
        if self.given_catalog is not None:
            return self.given_catalog
        from ingest.catalog import Catalog

        self.settings.ensure_data_dir()
        return self._stack.enter_context(Catalog(self.settings.resolved_catalog_url))

    def _open_curation(self) -> Curation:
        from ingest.curation import Curation

        return Curation(self.catalog, evidence=grading_evidence)

    def _open_index(self) -> IndexHandle:
        self.settings.ensure_data_dir()
        return self._stack.enter_context(open_index(self.settings, embedder=self.given_embedder))

    def _open_searcher(self) -> CuratedSearcher:
        from ingest.curation import CuratedSearcher

        return CuratedSearcher(self.index.searcher(), self.curation)

    def _open_llm(self) -> LLM:
        if self.given_llm is not None:
            return self.given_llm
        llm = make_llm_from_settings(self.settings, self.backend, self.model,
                                     extractive_if_missing=self.extractive_if_missing)
        self._stack.callback(llm.close)
        return llm


@contextmanager
def open_resources(settings: Settings, *, catalog: Catalog | None = None, embedder: ChunkingEmbedder | None = None,
                   llm: LLM | None = None, backend: str | None = None, model: str | None = None,
                   extractive_if_missing: bool = True) -> Iterator[Resources]:
    """`Resources` for one command, request scope or app lifetime; closed when the block ends."""
    res = Resources(settings, catalog, embedder, llm, backend, model, extractive_if_missing)
    try:
        yield res
    finally:
        res.close()
