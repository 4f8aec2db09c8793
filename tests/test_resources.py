"""The one set of resources (`oncolit.resources`): built on first use, closed once, the LLM always an object;
and the one table from errors to HTTP statuses (`oncolit.http_errors`)."""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import ingest.errors as errors
from ingest.catalog import Catalog
from oncolit.http_errors import HTTP_ERRORS, http_status
from oncolit.resources import Resources, open_resources
from oncolit.settings import Settings
from oncolit.wiring import make_llm_from_settings
from synthesis.llm import LLM, GenerationRefused, ModelNotFound, ScriptedLLM
from synthesis.llm.none_backend import NoneLLM

REPO = Path(__file__).resolve().parents[1]


def test_the_catalog_alone_imports_no_heavy_library(isolated_env: Path) -> None:
    """`oncolit records show` must not pay for torch, qdrant or llama.cpp: resources are built on first use."""
    code = (
        "import sys\n"
        "from oncolit.resources import open_resources\n"
        "from oncolit.settings import Settings\n"
        "with open_resources(Settings()) as res:\n"
        "    res.catalog.stats()\n"
        "    built = [n for n in ('catalog', 'curation', 'index', 'searcher', 'llm') if res.built(n)]\n"
        "heavy = sorted(m for m in ('torch', 'qdrant_edge', 'qdrant_client', 'llama_cpp', 'sentence_transformers',\n"
        "                           'transformers', 'httpx') if m in sys.modules)\n"
        "print(built, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['catalog'] []", out.stdout + out.stderr


def test_resources_are_built_once_and_closed_once(isolated_env: Path) -> None:
    res = Resources(Settings(llm={"backend": "none"}))
    assert not res.built("catalog")
    first = res.catalog
    assert res.catalog is first and res.curation.catalog is first  # one catalog, shared by the policy
    assert isinstance(res.llm, NoneLLM) and res.llm is res.llm
    res.close()
    res.close()  # idempotent
    assert not res.built("catalog")
    second = res.catalog  # a closed set can be used again: it builds afresh
    assert second is not first
    res.close()


def test_given_objects_stay_the_callers(isolated_env: Path) -> None:
    settings = Settings()
    settings.ensure_data_dir()
    with Catalog(settings.resolved_catalog_url) as catalog:
        llm = ScriptedLLM()
        with open_resources(settings, catalog=catalog, llm=llm) as res:
            assert res.catalog is catalog and res.llm is llm
            assert res.built("catalog") and res.built("llm")
        assert catalog.stats()["total"] is not None  # still open: closing the resources left it alone


def test_load_rejects_an_unknown_name(isolated_env: Path) -> None:
    with open_resources(Settings()) as res, pytest.raises(ValueError, match="unknown resource 'index2'"):
        res.load("index2")


def test_the_llm_is_always_an_object(isolated_env: Path) -> None:
    llm = make_llm_from_settings(Settings(), "none")
    assert isinstance(llm, LLM) and llm.name == "none" and llm.capabilities.generation is False
    with pytest.raises(GenerationRefused, match="no language model is configured"):
        llm.complete([{"role": "user", "content": "hi"}])


def test_a_configured_model_never_pulled_degrades_only_where_asked(isolated_env: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from oncolit import wiring

    wiring._WARNED.clear()
    settings = Settings(llm={"backend": "llamacpp", "model": "smollm2-135m"})
    with caplog.at_level(logging.WARNING):
        llm = make_llm_from_settings(settings, extractive_if_missing=True)
        make_llm_from_settings(settings, extractive_if_missing=True)
    assert isinstance(llm, NoneLLM)
    assert "continuing without a language model" in caplog.text and "oncolit models pull smollm2-135m" in caplog.text
    assert caplog.text.count("continuing without a language model") == 1  # said once
    with pytest.raises(ModelNotFound, match="not pulled"):
        make_llm_from_settings(settings)  # strict by default (oncolit extract)
    with pytest.raises(ModelNotFound, match="not pulled"):  # asked for by name: never silently degraded
        make_llm_from_settings(settings, "llamacpp", "smollm2-135m", extractive_if_missing=True)
    with open_resources(settings) as res:
        assert isinstance(res.llm, NoneLLM)
    with open_resources(settings, extractive_if_missing=False) as res, pytest.raises(ModelNotFound):
        res.load("llm")


def _tree() -> list[type[errors.OncoLitError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, errors.OncoLitError)]


def test_every_error_in_the_tree_is_drawn_in_its_docstring() -> None:
    doc = errors.__doc__ or ""
    assert [c.__name__ for c in _tree() if c.__name__ not in doc] == []


def test_the_http_table_orders_subclasses_before_their_bases() -> None:
    """First match wins, so a row below one of its base classes could never match."""
    shadowed = [(cls.__name__, earlier.__name__) for i, (cls, _, _) in enumerate(HTTP_ERRORS)
                for earlier, _, _ in HTTP_ERRORS[:i] if issubclass(cls, earlier)]
    assert shadowed == []
    assert HTTP_ERRORS[-1][0] is errors.OncoLitError


def test_one_status_per_error_on_every_surface() -> None:
    assert http_status(errors.PermissionDenied("no")) == (403, "forbidden")
    assert http_status(errors.CurationError("bad")) == (400, "invalid_request")
    assert http_status(errors.RecordNotFound("gone")) == (404, "not_found")
    assert http_status(errors.ModelNotFound("pull it")) == (503, "model_unavailable")
    assert http_status(errors.SourceRequestError("fix the query"))[0] == 400
    assert http_status(errors.SourceUnavailable("later"))[0] == 503
    assert http_status(errors.StoreError("odd"))[0] == 500
    assert http_status(errors.AlreadyExists("taken")) == (409, "conflict")
    assert http_status(errors.CatalogError("refused"))[0] == 500
    assert {http_status(c("x"))[0] for c in _tree()} <= {400, 403, 404, 409, 500, 502, 503}
