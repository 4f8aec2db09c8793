"""Metric functions against hand-computed examples, including ties, duplicates and empty inputs."""

from __future__ import annotations

import math

import pytest

from eval import metrics as M


def test_ndcg_binary_by_hand() -> None:
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3)
    assert M.ndcg_at_k(["a", "b", "c"], {"a": 1, "c": 1}, 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))


def test_ndcg_graded_by_hand() -> None:
    # ranked b (grade 1) then a (grade 2): DCG = 1 + 2/log2(3); ideal = 2 + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert M.ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(expected)
    assert M.ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)


def test_ndcg_cut_and_non_relevant_grades() -> None:
    assert M.ndcg_at_k(["x", "a"], {"a": 1}, 1) == 0.0  # the relevant one is past the cut
    assert M.ndcg_at_k(["a"], {"a": 1, "z": 0}, 10) == 1.0  # grade 0 is "judged not relevant"


def test_empty_ranking_scores_zero_and_no_relevant_is_undefined() -> None:
    assert M.ndcg_at_k([], {"a": 1}) == 0.0
    assert M.recall_at_k([], {"a": 1}) == 0.0
    assert M.mrr_at_k([], {"a": 1}) == 0.0
    assert M.ndcg_at_k(["a"], {}) is None
    assert M.recall_at_k(["a"], {"a": 0}) is None
    assert M.mrr_at_k(["a"], {}) is None


def test_mean_over_queries_skips_undefined() -> None:
    assert M.mean_over_queries([1.0, None, 0.0]) == (0.5, 2, 1)
    assert M.mean_over_queries([]) == (None, 0, 0)


def test_recall_precision_mrr_by_hand() -> None:
    rel = {"a": 1, "b": 1, "c": 1}
    assert M.recall_at_k(["a", "x", "b"], rel, 2) == pytest.approx(1 / 3)
    assert M.recall_at_k(["a", "x", "b"], rel, 100) == pytest.approx(2 / 3)
    assert M.precision_at_k(["a", "x", "b"], rel, 10) == pytest.approx(0.2)  # divided by k, not by 3 returned
    assert M.mrr_at_k(["x", "y", "b"], rel, 10) == pytest.approx(1 / 3)
    assert M.mrr_at_k(["x", "y", "b"], rel, 2) == 0.0


def test_duplicate_ids_in_a_ranking_count_once() -> None:
    assert M.mrr_at_k(["a", "a", "b"], {"b": 1}) == pytest.approx(0.5)
    assert M.recall_at_k(["b", "b"], {"b": 1, "c": 1}, 2) == pytest.approx(0.5)


def test_classification_by_hand() -> None:
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", "b"]
    assert M.accuracy(gold, pred) == 0.5
    rows = M.per_class(gold, pred)
    assert rows["a"]["precision"] == 1.0 and rows["a"]["recall"] == 0.5
    assert rows["b"]["precision"] == pytest.approx(1 / 3) and rows["b"]["recall"] == 1.0
    assert rows["c"]["f1"] == 0.0 and rows["c"]["support"] == 1
    assert M.macro_f1(gold, pred) == pytest.approx((2 / 3 + 0.5 + 0.0) / 3)
    labels, counts = M.confusion_matrix(gold, pred)
    assert labels == ["a", "b", "c"]
    assert counts == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_macro_f1_leaves_out_classes_never_seen_and_handles_empty() -> None:
    assert M.macro_f1(["a"], ["a"], ["a", "b"]) == 1.0  # b has no support and no predictions
    assert M.macro_f1([], []) is None
    assert M.accuracy([], []) is None
    with pytest.raises(ValueError):
        M.accuracy(["a"], [])


def test_auroc_with_ties_by_hand() -> None:
    # positives 0.8, 0.4; negatives 0.8, 0.1: pairs 0.5 (tie) + 1 + 0 + 1 = 2.5 of 4
    assert M.auroc([True, False, True, False], [0.8, 0.8, 0.4, 0.1]) == pytest.approx(0.625)
    assert M.auroc([True, False], [0.5, 0.5]) == pytest.approx(0.5)
    assert M.auroc([True, True], [0.1, 0.9]) is None
    assert M.auroc([], []) is None


def test_pr_curve_takes_ties_together_by_hand() -> None:
    curve = M.pr_curve([True, False, True], [0.9, 0.9, 0.5])
    assert curve["precision"] == [0.5, pytest.approx(2 / 3)]
    assert curve["recall"] == [0.5, 1.0]
    assert curve["average_precision"] == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert M.pr_curve([False, False], [0.1, 0.2]) is None


def test_binary_at_threshold() -> None:
    r = M.binary_at_threshold([True, False, True], [0.7, 0.6, 0.2], 0.5)
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert r["f1"] == pytest.approx(0.5)


def test_set_prf_matches_each_gold_once_and_micro_averages() -> None:
    r = M.set_prf(["x", "y"], ["x", "x"])
    assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 1)
    assert M.set_prf([], [])["f1"] == 0.0
    fuzzy = M.set_prf(["Placebo group"], ["placebo"], lambda g, p: p.lower() in g.lower())
    assert fuzzy["tp"] == 1
    total = M.micro_prf([r, {"tp": 1, "fp": 0, "fn": 0}])
    assert (total["tp"], total["fp"], total["fn"]) == (2, 1, 1)
    assert total["precision"] == pytest.approx(2 / 3)


def test_percentiles_and_latency_summary() -> None:
    assert M.percentile([1, 2, 3, 4], 50) == pytest.approx(2.5)
    assert M.percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert M.percentile([5], 99) == 5
    assert M.percentile([], 50) is None
    s = M.latency_summary([0.001, 0.003])
    assert s["n"] == 2 and s["mean_ms"] == pytest.approx(2.0) and s["max_ms"] == pytest.approx(3.0)
    assert M.latency_summary([])["p50_ms"] is None


def test_precision_recall_at_ks() -> None:
    rows = M.precision_recall_at_ks(["a", "x", "b"], {"a": 1, "b": 1}, [1, 3])
    assert rows == [(1.0, 0.5), (pytest.approx(2 / 3), 1.0)]
    assert M.precision_recall_at_ks(["a"], {}, [1]) is None
