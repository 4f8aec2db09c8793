"""llama-index on OncoLit's index: a real catalog, synced with the real MiniLM embedder into Qdrant Edge,
queried through `OncoLitRetriever` and a `RetrieverQueryEngine` — with no LLM call and no network.

The index is built once for the module (model load + sync of four records, a few seconds). Sockets
are refused for the whole module, so any attempt by llama-index to reach a hosted LLM or embedding
model fails the test instead of passing quietly.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Settings as LlamaSettings
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.response_synthesizers import ResponseMode
from llama_index.core.schema import NodeWithScore, TextNode

from index.llama import OncoLitRetriever, citation
from index.store import SearchFilter
from index.sync import sync
from ingest.catalog import Catalog
from ingest.records import AbstractSection, Article, MeshHeading, PartialDate
from ingest.source import ParsedItem
from oncolit.settings import Settings
from oncolit.wiring import IndexHandle, open_index


def _article(pmid: str, title: str, abstract: str, year: int, mesh: str) -> Article:
    return Article(pmid=pmid, title=title, abstract=[AbstractSection(text=abstract)], languages=["eng"],
                   pub_date=PartialDate(year=year, month=6, day=1), mesh_headings=[MeshHeading(descriptor=mesh)],
                   publication_types=["Journal Article"])


# Hand-written abstracts: two EGFR lung cancer papers years apart (for the date filter), two on other topics.
ARTICLES = [
    _article("900001", "Osimertinib as first-line therapy in EGFR-mutated advanced non-small-cell lung cancer",
             "Patients with untreated EGFR-mutated advanced lung cancer received osimertinib or a comparator "
             "EGFR tyrosine kinase inhibitor. Progression-free survival was longer with osimertinib "
             "(18.9 vs 10.2 months).", 2021, "Carcinoma, Non-Small-Cell Lung"),
    _article("900002", "Gefitinib versus chemotherapy in EGFR-mutant lung adenocarcinoma",
             "Patients with EGFR-mutant lung adenocarcinoma were assigned gefitinib or carboplatin-paclitaxel. "
             "Gefitinib improved progression-free survival in the mutation-positive subgroup.",
             2016, "Adenocarcinoma of Lung"),
    _article("900003", "Supervised aerobic exercise and cancer-related fatigue in breast cancer survivors",
             "Breast cancer survivors who completed a twelve-week supervised aerobic exercise programme "
             "reported less fatigue and better quality of life than those in usual care.",
             2019, "Breast Neoplasms"),
    _article("900004", "Colonoscopy screening and colorectal cancer incidence in adults aged 55 to 64",
             "Invitation to a single screening colonoscopy reduced colorectal cancer incidence over ten years "
             "of follow-up compared with no screening.", 2022, "Colorectal Neoplasms"),
]


@pytest.fixture(scope="module", autouse=True)
def no_network() -> Iterator[None]:
    """Refuse every internet socket while this module runs: the engine must work fully offline."""

    def refuse(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address}")
        return original(self, address)

    original = socket.socket.connect
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", refuse)
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def handle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexHandle]:
    data_dir = tmp_path_factory.mktemp("llama-index")
    settings = Settings(data_dir=data_dir)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings) as handle:
        catalog.ingest_batch([ParsedItem(a, b"<PubmedArticle/>", "pubmed-xml") for a in ARTICLES])
        report = sync(catalog, handle)
        assert report.records_indexed == len(ARTICLES)
        yield handle


class NoCallLLM(MockLLM):
    """A MockLLM that fails the test if anything asks it for text."""

    def complete(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the LLM was called")

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the LLM was called")


class NoCallEmbedding(MockEmbedding):
    """llama-index's own embedding model must never run: our Searcher embeds with the collection's model."""

    def _get_query_embedding(self, query: str) -> list[float]:
        raise AssertionError("llama-index's embed_model was called")

    def _get_text_embedding(self, text: str) -> list[float]:
        raise AssertionError("llama-index's embed_model was called")


@pytest.fixture
def llama_mocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """llama-index falls back to `Settings.llm` in places that ignore the `llm` argument (the NO_TEXT
    synthesizer is built without it) and the default resolves to OpenAI: put failing mocks there."""
    monkeypatch.setattr(LlamaSettings, "_llm", NoCallLLM())
    monkeypatch.setattr(LlamaSettings, "_embed_model", NoCallEmbedding(embed_dim=8))


@pytest.mark.usefixtures("llama_mocks")
def test_query_engine_answers_with_the_right_source_and_no_llm(handle: IndexHandle) -> None:
    retriever = OncoLitRetriever.from_handle(handle, limit=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=NoCallLLM(), response_mode=ResponseMode.NO_TEXT)

    response = engine.query("Does exercise reduce fatigue after breast cancer treatment?")

    assert response.response in ("", None)  # NO_TEXT: retrieval only
    top = response.source_nodes[0]
    assert top.node.metadata["record_id"] == "pubmed:900003"
    assert top.node.ref_doc_id == "pubmed:900003"
    assert "aerobic exercise" in top.node.get_content()
    assert len({n.node.metadata["record_id"] for n in response.source_nodes}) == len(response.source_nodes)


def test_retrieve_returns_scored_text_nodes_with_citable_metadata(handle: IndexHandle) -> None:
    nodes = OncoLitRetriever.from_handle(handle, limit=4).retrieve("colonoscopy screening colorectal cancer")

    assert nodes and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    scores = [n.score for n in nodes]
    assert scores == sorted(scores, reverse=True)
    top = nodes[0].node
    assert top.metadata["record_id"] == "pubmed:900004"
    assert top.metadata["citation"] == "[PMID:900004]"
    assert top.metadata["published"] == "2022-06-01" and top.metadata["record_type"] == "article"
    assert top.node_id == top.metadata["chunk_id"] == "pubmed:900004@1#0"
    assert top.metadata["title"].startswith("Colonoscopy screening")
    # The LLM sees the citation and title beside the passage; ids and bookkeeping stay out of prompts.
    llm_text = top.get_content(metadata_mode="llm")
    assert "[PMID:900004]" in llm_text and "chunk_id" not in llm_text


def test_retrieve_applies_the_search_filter(handle: IndexHandle) -> None:
    retriever = OncoLitRetriever.from_handle(handle, limit=4)
    query = "EGFR tyrosine kinase inhibitor in lung cancer"

    unfiltered = [n.node.metadata["record_id"] for n in retriever.retrieve(query)]
    assert set(unfiltered[:2]) == {"pubmed:900001", "pubmed:900002"}

    retriever.filters = SearchFilter(published_from=dt.date(2020, 1, 1))
    recent = retriever.retrieve(query)
    assert recent[0].node.metadata["record_id"] == "pubmed:900001"
    assert "pubmed:900002" not in {n.node.metadata["record_id"] for n in recent}
    assert all(n.node.metadata["published"] >= "2020-01-01" for n in recent)

    retriever.filters = SearchFilter(record_ids=("pubmed:900002",))
    retriever.mode = "sparse"
    assert [n.node.metadata["record_id"] for n in retriever.retrieve(query)] == ["pubmed:900002"]


def test_citation_forms() -> None:
    assert citation("pubmed:123") == "[PMID:123]"
    assert citation("ctgov:NCT01234567") == "[NCT01234567]"


def test_limit_must_be_positive(handle: IndexHandle) -> None:
    with pytest.raises(ValueError):
        OncoLitRetriever.from_handle(handle, limit=0)
