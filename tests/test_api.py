"""The HTTP API through FastAPI's TestClient, over the QA test catalog + index (extractive answers:
the model is exercised in test_answer.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.catalog.catalog import model_from_fields
from oncolit.api import create_app
from oncolit.settings import Settings
from oncolit.wiring import make_embedder
from synthesis.citations import citation_ids
from synthesis.llm import make_llm
from synthesis.readers import record_text
from synthesis.verify import find_quote
from tests.test_answer import ANSWER_KEYS, ANSWERABLE, NEJM, UNANSWERABLE, build_corpus


@pytest.fixture(scope="module")
def client(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    qa_corpus = tmp_path_factory.getbasetemp() / "qa-corpus"
    if not (qa_corpus / "built").exists():  # test_answer.py builds it first in a full run
        emb = make_embedder(Settings(data_dir=tmp_path_factory.getbasetemp() / "qa-embed-cache"))
        try:
            build_corpus(shared_data, qa_corpus, emb)
        finally:
            emb.close()
    corpus = qa_corpus
    copy = tmp_path_factory.mktemp("api") / "data"
    shutil.copytree(corpus, copy)
    app = create_app(Settings(data_dir=copy), llm=make_llm("none"))
    with TestClient(app) as test_client:  # runs the lifespan: resources open once, close at the end
        yield test_client


def test_ask_returns_a_cited_answer(client: TestClient) -> None:
    response = client.post("/ask", json={"question": ANSWERABLE, "filters": {"type": "article"}, "limit": 5})
    assert response.status_code == 200, response.text
    data = response.json()
    assert set(data) == ANSWER_KEYS and data["insufficient_evidence"] is False
    assert data["citations"] and set(citation_ids(data["answer"])) == {c["id"] for c in data["citations"]}
    for cite in data["citations"]:
        record = client.get(f"/records/{cite['id']}").json()  # resolves through the API too
        assert record["id"] == cite["id"] and cite["id"].startswith("pubmed:")
        assert find_quote(cite["quote"], record_text(model_from_fields(record["fields"]))) is not None


def test_ask_unanswerable_lists_closest_records(client: TestClient) -> None:
    data = client.post("/ask", json={"question": UNANSWERABLE}).json()
    assert data["insufficient_evidence"] is True and data["citations"] == [] and data["closest"]


def test_ask_validates_its_body(client: TestClient) -> None:
    assert client.post("/ask", json={"question": ""}).status_code == 422
    assert client.post("/ask", json={"question": ANSWERABLE, "filters": {"type": "book"}}).status_code == 422
    assert client.post("/ask", json={"question": ANSWERABLE, "limit": 0}).status_code == 422


def test_search_ranks_records_with_filters(client: TestClient) -> None:
    data = client.get("/search", params={"q": "trametinib BRAF melanoma", "limit": 3}).json()
    assert [r["rank"] for r in data["results"]] == [1, 2, 3]
    assert NEJM in [r["record_id"] for r in data["results"]] and all(r["passage"] for r in data["results"])
    trials = client.get("/search", params={"q": "melanoma", "type": "trial"}).json()["results"]
    assert trials and all(r["record_type"] == "trial" for r in trials)
    assert client.get("/search", params={"q": "melanoma", "since": "not-a-date"}).status_code == 422


def test_records_show_and_404(client: TestClient) -> None:
    data = client.get("/records/PMID:22663011").json()
    assert data["id"] == NEJM and data["fields"]["pmid"] == "22663011" and data["versions"]
    assert client.get("/records/NCT02576665").json()["id"] == "ctgov:NCT02576665"
    missing = client.get("/records/pubmed:1")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": missing.json()["detail"]}
    assert "pubmed:1" in missing.json()["detail"]


def test_health_and_openapi(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["points"] > 0 and health["llm"] == "none"
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ask", "/search", "/records/{record_id}", "/healthz"} <= set(paths)
    assert client.get("/docs").status_code == 200
