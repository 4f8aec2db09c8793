"""Catalog -> index sync on real records: idempotent, version-aware, rebuildable, and useful.

One module-scoped catalog of the recorded oncology records (PubMedQA oncology subset, the NEJM RCT
and the recorded CT.gov oncology studies) is indexed once with the real MiniLM embedder into Qdrant
Edge; tests that change it work on copies.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from index.store import SearchFilter
from index.sync import load_cursor, rebuild, sync
from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.pubmed_xml import iter_pubmed_file, parse_pubmed_xml
from ingest.records import CommentCorrection, Deletion
from ingest.source import ParsedItem
from oncolit.settings import Settings
from oncolit.wiring import make_embedder, open_index
from tests.helpers import cli_json

ONCOLOGY = re.compile(r"cancer|carcinoma|tumou?r|neoplasm|lymphoma|leukemia|melanoma|oncolog|metasta", re.I)

# Hand-written questions about records in the recorded corpus, and the record that answers each.
QUESTIONS = [
    ("is frozen section of the sentinel node during breast surgery worth doing", "pubmed:11034241"),
    ("does PET imaging alter treatment decisions for rectal cancer", "pubmed:14978612"),
    ("p53 mutations predicting response to preoperative chemoradiation", "pubmed:10927144"),
    ("second-look laparotomy in ovarian cancer patients in Thailand", "pubmed:11759976"),
    ("can CT scans substitute for bone scans to find skeletal metastases of breast carcinoma", "pubmed:17890090"),
    ("VEGF expression, venous invasion and survival in renal cell carcinoma", "pubmed:17489316"),
    ("MEK inhibitor trametinib in BRAF V600 mutant melanoma randomized trial", "pubmed:22663011"),
    ("EGFR wild-type non-small cell lung cancer after anti-PD-1 therapy versus docetaxel", "ctgov:NCT06382129"),
]


def _items(shared_data: Path) -> list[ParsedItem]:
    items = [i for i in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "pubmedqa-dev-0001.xml.gz")
             if ONCOLOGY.search(i.record.title + " " + i.record.abstract_text)]
    items += parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    for path in sorted((shared_data / "ctgov" / "real" / "biomcp").glob("get_*.json")):
        items += list(iter_ctgov_path(path))
    return items


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory):
    emb = make_embedder(Settings(data_dir=tmp_path_factory.mktemp("embed-cache")))
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def built(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A data dir with the catalog and a synced index; tests copy it before changing anything."""
    data_dir = tmp_path_factory.mktemp("indexed")
    settings = Settings(data_dir=data_dir)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        catalog.ingest_batch(_items(shared_data))
        report = sync(catalog, handle)
        assert report.records_indexed == catalog.stats()["total"]["active"]
    return data_dir


@pytest.fixture
def data_dir(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    return copy


def _results(handle, queries) -> list[list[tuple[str, float]]]:
    searcher = handle.searcher()
    return [[(h.record_id, round(h.score, 5)) for h in searcher.search(q, limit=5)] for q, _ in queries]


def test_search_quality_smoke_right_record_in_top_3(built: Path, embedder) -> None:
    with open_index(Settings(data_dir=built), embedder=embedder) as handle:
        searcher = handle.searcher()
        misses = []
        for question, expected in QUESTIONS:
            top = [h.record_id for h in searcher.search(question, limit=3)]
            if expected not in top:
                misses.append((question, expected, top))
    assert not misses, misses


def test_sync_twice_writes_nothing_and_keeps_ids(data_dir: Path, embedder) -> None:
    settings = Settings(data_dir=data_dir)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        before = handle.store.count()
        ids_before = handle.store.point_ids_for("pubmed:22663011")
        report = sync(catalog, handle)
        assert (report.points_written, report.points_removed) == (0, 0)
        assert handle.store.count() == before
        assert handle.store.point_ids_for("pubmed:22663011") == ids_before
        assert load_cursor(handle.state_path).seq == catalog.max_change_seq()


def test_revision_replaces_points_and_deletions_retractions_remove_them(data_dir: Path, embedder) -> None:
    settings = Settings(data_dir=data_dir)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        total = handle.store.count()
        nejm = catalog.get_record("pubmed:22663011")
        revised = nejm.model_copy(update={"title": nejm.title + " (updated)"})
        catalog.ingest_batch([ParsedItem(revised, b"<PubmedArticle/>", "pubmed-xml")])
        deleted, retracted = "pubmed:11034241", "pubmed:14978612"
        catalog.ingest_batch([ParsedItem(Deletion(pmid=deleted.split(":")[1]), b"", "pubmed-xml")])
        notice = nejm.model_copy(update={"pmid": "99999999", "title": "Retraction notice", "abstract": [],
                                         "publication_types": ["Retraction of Publication"],
                                         "comments_corrections": [CommentCorrection(ref_type="RetractionOf",
                                                                                    pmid=retracted.split(":")[1])]})
        catalog.ingest_batch([ParsedItem(notice, b"<PubmedArticle/>", "pubmed-xml")])
        removed_expected = len(handle.store.point_ids_for(deleted)) + len(handle.store.point_ids_for(retracted))
        report = sync(catalog, handle)
        assert report.records_removed == 2 and report.points_removed >= removed_expected
        assert handle.store.point_ids_for(deleted) == set() == handle.store.point_ids_for(retracted)
        versions = {h.payload["version"] for h in handle.searcher().chunks(
            "trametinib melanoma", SearchFilter(record_ids=("pubmed:22663011",)), limit=50)}
        assert versions == {2}, "a revised record must leave no points of its old version"
        assert handle.store.count() == total - removed_expected + len(handle.store.point_ids_for("pubmed:99999999"))


def test_rebuild_from_catalog_gives_identical_results(data_dir: Path, embedder) -> None:
    settings = Settings(data_dir=data_dir)
    with open_index(settings, embedder=embedder) as handle:
        before = _results(handle, QUESTIONS)
        count = handle.store.count()
    shutil.rmtree(settings.index_dir)  # delete the index entirely
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        report = rebuild(catalog, handle)
        assert report.embed_cache_hits == report.chunks_embedded, "unchanged text is never embedded twice"
        assert handle.store.count() == count
        assert _results(handle, QUESTIONS) == before


def test_filters_and_cli_interface(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(data_dir))
    synced = cli_json("index", "sync")
    assert synced["points_written"] == 0 and synced["points_total"] > 0 and "total" in synced["timings"]
    trials = cli_json("search", "lung cancer", "--type", "trial", "--limit", "3")["results"]
    assert trials and all(r["record_id"].startswith("ctgov:") for r in trials)
    assert [r["rank"] for r in trials] == list(range(1, len(trials) + 1))
    assert all(r["passage"] and isinstance(r["score"], float) for r in trials)
    dated = cli_json("search", "prostate cancer", "--since", "2004-01-01", "--until", "2004-12-31")["results"]
    assert dated and all(r["published"].startswith("2004") for r in dated)
