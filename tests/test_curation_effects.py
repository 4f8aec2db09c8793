"""Rules and decisions change what search, answers and digests return: an excluded record never
appears (at once, through the curated searcher, and for good once the index syncs), an approval beats
a rule, and pinned records are returned for their topic unless excluded.

A small recorded catalog (six PubMedQA oncology abstracts, the NEJM trametinib RCT, one CT.gov study)
indexed with the real MiniLM embedder into Qdrant Edge.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from index.sync import sync
from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.curation import Curation
from ingest.curation.reading import CuratedSearcher, without_excluded
from ingest.pubmed_xml import iter_pubmed_file, parse_pubmed_xml
from oncolit.settings import Settings
from oncolit.wiring import make_embedder, open_index
from synthesis.answer import answer

PUBMEDQA_IDS = {"11034241", "14978612", "10927144", "11759976", "17890090", "17489316"}
NEJM = "pubmed:22663011"
QUESTION = "Does trametinib improve progression-free survival in BRAF V600 melanoma?"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    emb = make_embedder(Settings(data_dir=tmp_path_factory.mktemp("curation-embed-cache")))
    yield emb
    emb.close()


@pytest.fixture
def world(shared_data: Path, tmp_path: Path, embedder: Any):
    items = [i for i in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "pubmedqa-dev-0001.xml.gz")
             if i.record.pmid in PUBMEDQA_IDS]
    items += parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items += list(iter_ctgov_path(shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json"))
    settings = Settings(data_dir=tmp_path)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        catalog.ingest_batch(items)
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "lib", "librarian")
        sync(catalog, handle, is_excluded=cur.is_excluded)
        yield catalog, handle, cur


def ids(hits) -> list[str]:
    return [h.record_id for h in hits]


def test_search_never_returns_excluded_records(world) -> None:
    catalog, handle, cur = world
    raw, curated = handle.searcher(), CuratedSearcher(handle.searcher(), cur)
    assert ids(raw.search(QUESTION, limit=3))[0] == NEJM

    cur.exclude("lib", [NEJM], "superseded by the final analysis")
    assert NEJM not in ids(curated.search(QUESTION, limit=10)), "excluded at once, before any sync"
    assert [h.rank for h in curated.search(QUESTION, limit=5)] == [1, 2, 3, 4, 5]
    report = sync(catalog, handle, is_excluded=cur.is_excluded)
    assert report.records_removed == 1 and not handle.store.point_ids_for(NEJM)
    assert NEJM not in ids(raw.search(QUESTION, limit=10)), "and gone from the index after sync"

    cur.reset("lib", [NEJM])
    rule = cur.add_rule("lib", "exclude", "journal", "0028-4793", "journal under review")
    sync(catalog, handle, is_excluded=cur.is_excluded)
    assert NEJM not in ids(raw.search(QUESTION, limit=10)) and NEJM not in ids(curated.search(QUESTION, limit=10))

    cur.approve("lib", [NEJM])  # the librarian read it: the approval beats the rule
    sync(catalog, handle, is_excluded=cur.is_excluded)  # the approval's change_seq brings it back
    assert ids(raw.search(QUESTION, limit=3))[0] == NEJM == ids(curated.search(QUESTION, limit=3))[0]
    cur.update_rule("lib", rule.id, active=False)
    assert catalog.get(NEJM)["state"] == "active", "nothing is ever deleted"


def test_answers_never_cite_excluded_records(world) -> None:
    catalog, handle, cur = world
    searcher = CuratedSearcher(handle.searcher(), cur)
    before = answer(QUESTION, searcher, catalog, None)
    assert NEJM in [c["id"] for c in before.citations]
    cur.add_rule("lib", "exclude", "mesh", "Melanoma", "melanoma handled by another service")
    after = answer(QUESTION, searcher, catalog, None)
    shown = [c["id"] for c in after.citations] + [c["id"] for c in after.closest]
    assert NEJM not in shown and "22663011" not in after.answer


def test_digests_leave_out_excluded_records_and_pins_follow_exclusions(world) -> None:
    from synthesis.digest import Topic, build_digest, candidates, window_after

    catalog, handle, cur = world
    topics = [Topic(name="melanoma", query="BRAF MEK inhibitor melanoma trametinib")]
    window = window_after(catalog, None, 7)

    def digest() -> dict:
        pool = without_excluded(cur, candidates(catalog, window))
        return build_digest(catalog, topics, window, period_end=dt.date.today(), pool=pool)

    assert NEJM in digest()["item_ids"]
    cur.pin("lib", NEJM, "melanoma")
    cur.pin("lib", "pubmed:11034241", "melanoma")  # off-topic, but pinned: featured regardless of relevance
    assert cur.pinned("melanoma") == [NEJM, "pubmed:11034241"]
    cur.exclude("lib", [NEJM], "retraction pending")
    assert NEJM not in digest()["item_ids"] and NEJM not in digest()["cited"]
    assert cur.pinned("melanoma") == ["pubmed:11034241"], "an excluded record is featured nowhere"


def test_pinned_records_are_always_featured_first_in_their_topic(world) -> None:
    from synthesis.digest import Topic, build_digest, candidates, window_after

    catalog, _handle, cur = world
    topics = [Topic(name="melanoma", query="BRAF MEK inhibitor melanoma trametinib"),
              Topic(name="lung", query="non-small cell lung cancer")]
    window = window_after(catalog, None, 7)
    off_topic = "pubmed:11034241"  # sentinel nodes in breast cancer: not about melanoma at all
    cur.pin("lib", off_topic, "melanoma")
    # An empty window (nothing new) still features the pin; so does a full one, first.
    for pool in ([], without_excluded(cur, candidates(catalog, window))):
        doc = build_digest(catalog, topics, window, period_end=dt.date.today(), pool=pool, pinned=cur.pins())
        melanoma = next(t for t in doc["topics"] if t["name"] == "melanoma")
        assert melanoma["items"][0]["record_id"] == off_topic and melanoma["items"][0]["pinned"] is True
        assert off_topic in doc["cited"]


def test_router_serves_inside_the_api_app_on_its_catalog(world, embedder: Any, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from oncolit.api import create_app
    from oncolit.web import create_router
    from synthesis.llm.none_backend import NoneLLM

    catalog, handle, cur = world
    _key_id, key = cur.create_key("ada", "lib")
    settings = Settings(data_dir=tmp_path / "api", catalog_url=catalog.url)
    extra = {"embedder": embedder} if "embedder" in inspect.signature(create_app).parameters else {}
    app = create_app(settings, llm=NoneLLM(), **extra)
    if "/curation/me" not in app.openapi()["paths"]:
        app.include_router(create_router(settings))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/curation/me", headers=headers).json() == {"name": "lib", "role": "librarian"}
        r = client.post("/curation/decisions", json={"record_ids": [NEJM], "action": "exclude",
                                                     "reason": "via the API app"}, headers=headers)
        assert r.status_code == 200 and r.json()["changed"] == [NEJM]
        assert client.get("/curation/queue", headers=headers).status_code == 200
    assert cur.verdict(NEJM).reason == "via the API app"


def test_cli_search_and_record_route_respect_exclusions_before_any_sync(shared_data: Path, tmp_path: Path,
                                                                         embedder: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #18 item 8: `oncolit search` returned an excluded record until the next sync, and GET /records/{id}
    served it without saying so."""
    import json

    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from oncolit.api import create_app
    from oncolit.cli.common import get_settings
    from oncolit.cli.main import app
    from synthesis.llm.none_backend import NoneLLM

    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items += [i for i in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "pubmedqa-dev-0001.xml.gz")
              if i.record.pmid in PUBMEDQA_IDS]
    settings = Settings(data_dir=tmp_path)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        catalog.ingest_batch(items)
        sync(catalog, handle)
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.exclude("ada", [NEJM], "retraction pending")  # after the sync: the index still holds its points
    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONCOLIT_SEARCH__RERANKER", "none")
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["search", QUESTION, "--json", "--limit", "5", "--mode", "sparse"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 0, out.output
    found = [r["record_id"] for r in json.loads(out.stdout)["results"]]
    assert found and NEJM not in found
    with TestClient(create_app(Settings(data_dir=tmp_path), llm=NoneLLM())) as client:
        record = client.get(f"/records/{NEJM}").json()
    assert record["curation"] == {"excluded": True, "reason": "retraction pending"}
