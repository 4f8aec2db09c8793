"""Every sync fills each point's design and evidence level from the grader, and refreshes them in place
when the grading changes (issue 15: `--max-level` filtered on a field sync never filled).

The fixture catalog is four hand-written studies of one question at four evidence levels: a phase III
randomised trial (grade 1b), a randomised phase II registration (2a), a case report (4b) and a
preclinical study (5).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from index.store import SearchFilter
from index.sync import load_grading, sync
from index.verify import repair, verify
from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.source import ParsedItem
from oncolit.settings import Settings
from oncolit.wiring import make_annotator, make_embedder, open_index
from tests.conftest import FIXTURES
from tests.helpers import cli_json

QUERY = "osimertinib EGFR-mutant non-small cell lung cancer"
LEVELS = {"pubmed:90001001": 1, "ctgov:NCT90000001": 2, "pubmed:90001002": 4, "pubmed:90001003": 5}
DESIGNS = {"pubmed:90001001": "rct", "ctgov:NCT90000001": "rct", "pubmed:90001002": "case_report",
           "pubmed:90001003": "preclinical"}


def _items() -> list[ParsedItem]:
    items = parse_pubmed_xml((FIXTURES / "pubmed" / "evidence_levels.xml").read_bytes())
    return items + list(iter_ctgov_path(FIXTURES / "ctgov" / "NCT90000001_2024-03-01.json"))


def _catalog(settings: Settings) -> Catalog:
    settings.ensure_data_dir()
    catalog = Catalog(settings.resolved_catalog_url)
    catalog.ingest_batch(_items())
    return catalog


class FixedAnnotator:
    """A grader that says the same for every record: stands for an older grading (or none at all)."""

    def __init__(self, fingerprint: str, level: int | None, design: str | None = None) -> None:
        self.fingerprint, self.level, self.design = fingerprint, level, design

    def __call__(self, record: BaseModel) -> tuple[str | None, int | None]:
        return self.design, self.level


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.texts = inner, 0

    def embed(self, texts: Sequence[str]) -> Any:
        self.texts += len(texts)
        return self.inner.embed(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    emb = make_embedder(Settings(data_dir=tmp_path_factory.mktemp("embed-cache")))
    yield emb
    emb.close()


def _levels(handle: Any, filters: SearchFilter | None = None) -> dict[str, Any]:
    return {h.record_id: h.payload.get("evidence_level") for h in handle.searcher().search(QUERY, filters, limit=10)}


def test_the_grade_annotator_reads_the_rules_based_grade() -> None:
    annotate = make_annotator()
    assert {i.record.record_id: annotate(i.record) for i in _items()} == {
        rid: (DESIGNS[rid], level) for rid, level in LEVELS.items()}
    assert annotate.fingerprint == make_annotator().fingerprint
    assert annotate.fingerprint.startswith("grading/v1+")


def test_search_max_level_2_returns_only_levels_1_and_2(isolated_env: Path) -> None:
    _catalog(Settings()).close()
    synced = cli_json("index", "sync")
    assert synced["records_indexed"] == len(LEVELS) and synced["grading"] == make_annotator().fingerprint

    every = cli_json("search", QUERY, "--limit", "10")["results"]
    assert {r["record_id"]: r["evidence_level"] for r in every} == LEVELS
    assert {r["record_id"]: r["design"] for r in every} == DESIGNS

    strong = cli_json("search", QUERY, "--max-level", "2", "--limit", "10")["results"]
    assert strong, "--max-level 2 must find the trials"
    assert all(r["evidence_level"] is not None and r["evidence_level"] <= 2 for r in strong)
    assert {r["record_id"] for r in strong} == {"pubmed:90001001", "ctgov:NCT90000001"}
    assert {r["record_id"] for r in cli_json("search", QUERY, "--max-level", "4")["results"]} == {
        rid for rid, level in LEVELS.items() if level <= 4}


def test_changed_grading_refreshes_levels_in_place_without_reembedding(embedder: Any) -> None:
    settings = Settings()
    counting = CountingEmbedder(embedder)
    with _catalog(settings) as catalog, open_index(settings, embedder=counting) as real:
        old = dataclasses.replace(real, annotator=FixedAnnotator("old-grading", 3, "cohort"))
        first = sync(catalog, old)
        assert first.records_indexed == len(LEVELS) and load_grading(real.state_path) == "old-grading"
        assert _levels(real) == dict.fromkeys(LEVELS, 3) and _levels(real, SearchFilter(max_evidence_level=2)) == {}
        points, embedded = real.store.count(), counting.texts

        stopped = sync(catalog, real, should_stop=lambda: True)  # a stop mid-refresh keeps the old fingerprint
        assert stopped.stopped and load_grading(real.state_path) == "old-grading"

        report = sync(catalog, real)  # the handle's annotator: the product's grader, another fingerprint
        assert (report.records_regraded, report.points_regraded) == (len(LEVELS), points)
        assert (report.points_written, report.chunks_embedded, counting.texts) == (0, 0, embedded)
        assert real.store.count() == points
        assert load_grading(real.state_path) == real.annotator.fingerprint == report.grading
        assert _levels(real) == LEVELS
        assert _levels(real, SearchFilter(max_evidence_level=2)) == {
            rid: level for rid, level in LEVELS.items() if level <= 2}
        assert {h.payload["design"] for h in real.searcher().search(QUERY, SearchFilter(designs=("case_report",)))} \
            == {"case_report"}

        again = sync(catalog, real)
        assert (again.records_regraded, again.points_written) == (0, 0)
        assert verify(catalog, real).ok


def test_an_index_synced_before_grades_were_filled_is_found_stale_and_repaired(embedder: Any) -> None:
    """What an index written by the old sync looks like: null levels, a state file without a fingerprint."""
    settings = Settings()
    with _catalog(settings) as catalog, open_index(settings, embedder=embedder) as handle:
        sync(catalog, dataclasses.replace(handle, annotator=FixedAnnotator("nobody", None)))
        state = json.loads(handle.state_path.read_text())
        handle.state_path.write_text(json.dumps({"last_seq": state["last_seq"], "last_id": state["last_id"]}))
        assert set(_levels(handle).values()) == {None}

        found = verify(catalog, handle)
        assert found.grading_stale and not found.ok and not (found.missing or found.mismatched or found.leaked)
        fixed = repair(catalog, handle, found)
        assert fixed.records_regraded == len(LEVELS) and fixed.chunks_embedded == 0
        assert verify(catalog, handle).ok and _levels(handle) == LEVELS
