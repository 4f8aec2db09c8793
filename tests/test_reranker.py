"""The reranker: Searcher reorders only its top `rerank_depth`; the shipped cross-encoder loads offline, is
deterministic and puts a planted relevant passage above distractors; digest relevance and ask use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from index.search import RecordHit, Reranker, Searcher
from synthesis.rerank import CrossEncoderReranker, load_reranker, shipped_path

QUERY = "osimertinib in EGFR-mutant non-small-cell lung cancer: progression-free survival"
RELEVANT = ("Osimertinib versus standard EGFR tyrosine kinase inhibitors in previously untreated EGFR "
            "mutation-positive advanced non-small-cell lung cancer. Median progression-free survival was "
            "significantly longer with osimertinib (18.9 vs 10.2 months; hazard ratio 0.46).")
DISTRACTORS = (
    "Adjuvant trastuzumab in HER2-positive early breast cancer improved disease-free survival at 3 years.",
    "Yoga reduced anxiety scores in healthy university students compared with a waiting list.",
    "Codeine glucuronidation was not altered by diclofenac in healthy volunteers.",
    "Lung function in asthma: inhaled budesonide improved FEV1 compared with placebo in children.",
    "Progression-free survival of patients with metastatic colorectal cancer on FOLFOX was 8 months.",
)


class WordOverlap:
    """A test double of the protocol: counts query words in the passage."""

    name = "word-overlap"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self.calls.append(len(passages))
        words = set(query.lower().split())
        return [len(words & set(p.lower().split())) / (1 + len(words)) for p in passages]


@dataclass
class StubFirstStage(Searcher):
    hits: list[RecordHit] | None = None

    def first_stage(self, query: str, filters: Any = None, limit: int = 10, mode: Any = "hybrid",
                    expand: Any = None) -> list[RecordHit]:
        return (self.hits or [])[:limit]


def _hit(i: int, title: str, passage: str) -> RecordHit:
    return RecordHit(record_id=f"pubmed:{i}", score=1.0 / (i + 1), rank=i + 1, passage=passage, title=title,
                     chunk_id=f"c{i}", section=None, payload={})


def test_searcher_reranks_only_the_top_depth_and_keeps_the_tail() -> None:
    hits = [_hit(i, "", f"unrelated text {i}") for i in range(6)]
    hits[4] = _hit(4, "lung cancer", "osimertinib progression-free survival")
    reranker = WordOverlap()
    assert isinstance(reranker, Reranker)
    s = StubFirstStage(store=None, embedder=None, encoder=None, reranker=reranker, rerank_depth=5,  # type: ignore[arg-type]
                       rerank=True, hits=hits)
    out = s.search(QUERY, limit=6)
    assert [h.record_id for h in out][:1] == ["pubmed:4"] and out[0].relevance is not None
    assert out[-1].record_id == "pubmed:5" and out[-1].relevance is None  # below the depth: first-stage order
    assert [h.rank for h in out] == [1, 2, 3, 4, 5, 6]
    assert reranker.calls == [5]
    assert [h.record_id for h in s.search(QUERY, limit=6, rerank=False)] == [h.record_id for h in hits]
    with pytest.raises(ValueError, match="no reranker"):
        StubFirstStage(store=None, embedder=None, encoder=None, hits=hits).search(QUERY, rerank=True)  # type: ignore[arg-type]


def test_shipped_reranker_is_offline_deterministic_and_finds_the_planted_passage() -> None:
    reranker = load_reranker("shipped", threads=1)
    assert reranker is not None and reranker.folder == shipped_path()
    passages = [*DISTRACTORS[:3], RELEVANT, *DISTRACTORS[3:]]
    first = reranker.score(QUERY, passages)
    assert first == reranker.score(QUERY, passages)  # deterministic
    assert all(0.0 <= s <= 1.0 for s in first)
    assert max(range(len(passages)), key=lambda i: first[i]) == 3
    single = reranker.score(QUERY, [RELEVANT])[0]
    assert single == pytest.approx(first[3], abs=1e-4)  # batching (padding) does not change a score


def test_reranker_choices() -> None:
    assert load_reranker("none") is None
    with pytest.raises(FileNotFoundError, match="holds no reranker"):
        CrossEncoderReranker("/nonexistent/rerank")


def test_digest_relevance_reads_the_reranker() -> None:
    from dataclasses import replace

    from synthesis.digest import IndexScorer

    hits = [replace(_hit(0, "", "unrelated words"), score=0.6),
            replace(_hit(1, "lung cancer", "osimertinib progression-free survival"), score=0.6)]

    class Dense:
        reranker = WordOverlap()
        rerank_depth = 30
        rerank = True  # search.rerank_by_default

        def search(self, query: str, filters: Any, limit: int, mode: str, rerank: bool | None = None) -> list[Any]:
            assert mode == "dense" and rerank is False
            return hits

    scores = IndexScorer(Dense()).similarity(QUERY, ["pubmed:0", "pubmed:1"])
    assert scores["pubmed:1"] > scores["pubmed:0"]
