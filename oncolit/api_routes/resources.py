"""What the answering surfaces (HTTP API, `oncolit ask`) open once and share: the catalog, the index
(searcher) and the language model, built from settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from ingest.catalog import Catalog
from ingest.curation import CuratedSearcher, Curation
from oncolit.settings import Settings
from oncolit.wiring import IndexHandle, make_llm_from_settings, open_index
from synthesis.llm import LLM, ModelNotFound
from synthesis.llm.none_backend import NoneLLM

log = logging.getLogger(__name__)


def llm_from_settings(settings: Settings, backend: str | None = None, model: str | None = None) -> LLM:
    """The configured LLM (`backend`/`model` override the settings); `NoneLLM` for backend none."""
    return make_llm_from_settings(settings, backend, model) or NoneLLM()


def llm_or_extractive(settings: Settings, backend: str | None = None, model: str | None = None) -> LLM:
    """`llm_from_settings`, except that a configured (not explicitly asked-for) model that was never
    pulled degrades to extractive answers with a warning instead of failing every question."""
    try:
        return llm_from_settings(settings, backend, model)
    except ModelNotFound as exc:
        if backend or model:
            raise
        log.warning("%s; answering extractively (pull the model with `oncolit models pull`, or set "
                    "ONCOLIT_LLM__BACKEND=none to silence this)", exc)
        return NoneLLM()


@dataclass
class Resources:
    settings: Settings
    catalog: Catalog
    index: IndexHandle
    searcher: Any
    llm: LLM


@contextmanager
def open_resources(settings: Settings, *, embedder: Any = None, llm: LLM | None = None,
                   backend: str | None = None, model: str | None = None) -> Iterator[Resources]:
    """Catalog, index and LLM, closed in reverse order. An `embedder` or `llm` passed in stays the
    caller's to close."""
    with ExitStack() as stack:
        settings.ensure_data_dir()
        catalog = stack.enter_context(Catalog(settings.resolved_catalog_url))
        handle = stack.enter_context(open_index(settings, embedder=embedder))
        if llm is None:
            llm = llm_or_extractive(settings, backend, model)
            stack.callback(llm.close)
        # Librarians' exclusions apply at read time too: excluded records never reach a reader.
        searcher = CuratedSearcher(handle.searcher(), Curation(catalog))
        yield Resources(settings, catalog, handle, searcher, llm)
