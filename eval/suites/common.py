"""What suites share: run options, a fresh catalog + index built from dataset records, the LLM a backend spec
names, and phase timers.

Fresh means fresh: every suite that indexes builds a new catalog (SQLite) and a new Qdrant Edge store under
`<out>/work/`, whatever index backend the settings name, so a run never reads or writes the user's index and
two runs of the same command start from the same state. The embedding model, chunking and fusion settings are
the configured ones (they are what is being measured).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.catalog import Catalog
from ingest.records import Article
from oncolit.settings import Settings
from synthesis.llm.base import LLM

BACKEND_SPEC_HELP = ("LLM backend spec: `none` (rules/extractive only), `settings` (the configured llm.backend and "
                     "llm.model), `llamacpp:<registry name or .gguf path>` (e.g. llamacpp:smollm2-135m), "
                     "`openai[:model]`, `transformers:<model dir>`.")


@dataclass
class RunOptions:
    dataset: Path
    out: Path
    settings: Settings
    limit: int | None = None
    keep_work: bool = False
    embedder: Any = None  # an embedder already loaded (as `open_index(embedder=...)` takes); None: from settings

    @property
    def work_dir(self) -> Path:
        return self.out / "work"


class Phases:
    """Wall-clock seconds per named phase, summed over repeats."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


# ------------------------------------------------------------------------------------------------
# Fresh catalog + index
# ------------------------------------------------------------------------------------------------


def work_settings(settings: Settings, work_dir: Path) -> Settings:
    """The configured settings with every path moved under `work_dir` and the index on a fresh Edge store."""
    index = settings.index.model_copy(update={"backend": "edge", "path": None})
    return settings.model_copy(update={"data_dir": work_dir, "catalog_url": None, "index": index})


@dataclass
class IndexedCorpus:
    catalog: Catalog
    handle: Any
    settings: Settings
    ingest: dict[str, Any]
    sync: dict[str, Any]

    def searcher(self) -> Any:
        return self.handle.searcher()


@contextmanager
def fresh_index(options: RunOptions, records: Sequence[Article], phases: Phases, *, batch_size: int = 500,
                name: str = "corpus") -> Iterator[IndexedCorpus]:
    """Ingest `records` into a new catalog and sync them into a new index; yields both, removes them after
    (unless `options.keep_work`)."""
    from eval.datasets.records import catalog_item
    from index.sync import sync
    from oncolit.wiring import open_index

    work = options.work_dir / name
    if work.exists():
        shutil.rmtree(work)
    settings = work_settings(options.settings, work)
    settings.ensure_data_dir()
    catalog = Catalog(settings.resolved_catalog_url)
    try:
        batch_seconds = []
        with phases("ingest"):
            for i in range(0, len(records), batch_size):
                started = time.perf_counter()
                catalog.ingest_batch([catalog_item(r) for r in records[i:i + batch_size]])
                batch_seconds.append(time.perf_counter() - started)
        ingest = {"records": len(records), "batches": len(batch_seconds), "batch_size": batch_size,
                  "seconds": sum(batch_seconds)}
        with ExitStack() as stack:
            with phases("index_open"):  # loads the embedding model
                handle = stack.enter_context(open_index(settings, embedder=options.embedder))
            with phases("sync"):
                report = sync(catalog, handle, batch_size=settings.index.sync_batch_size)
            yield IndexedCorpus(catalog, handle, settings, ingest, report.as_dict())
    finally:
        catalog.close()
        if not options.keep_work:
            shutil.rmtree(work, ignore_errors=True)
            if options.work_dir.exists() and not any(options.work_dir.iterdir()):
                options.work_dir.rmdir()


# ------------------------------------------------------------------------------------------------
# LLMs
# ------------------------------------------------------------------------------------------------


def parse_backend(spec: str, settings: Settings) -> tuple[str, str | None]:
    """("llamacpp", "smollm2-135m") from "llamacpp:smollm2-135m"; "settings" -> the configured pair."""
    spec = spec.strip()
    if spec == "settings":
        return settings.llm.backend, settings.llm.model
    backend, _, model = spec.partition(":")
    return backend, (model or None)


def build_llm(settings: Settings, spec: str) -> LLM:
    """The LLM a backend spec names (`NoneLLM` for `none`: `capabilities.generation` is false), with the
    configured options for that backend."""
    from oncolit.wiring import make_llm_from_settings

    backend, model = parse_backend(spec, settings)
    return make_llm_from_settings(settings, backend, model)


def llm_name(llm: LLM | None) -> str:
    return "none" if llm is None else getattr(llm, "name", "llm")


def describe_backend(spec: str, settings: Settings) -> dict[str, Any]:
    backend, model = parse_backend(spec, settings)
    return {"spec": spec, "backend": backend, "model": model}
