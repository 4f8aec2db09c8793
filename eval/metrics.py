"""Metric functions, pure and small, each checked against hand-computed examples in tests/test_eval_metrics.py.

Conventions (the ones BEIR/pytrec_eval and scikit-learn use, so numbers are comparable with published ones):

- Ranking metrics take `ranked` (document ids, best first; duplicates after the first occurrence are ignored)
  and `relevant` ({doc id: graded relevance}; grades <= 0 count as not relevant). A query with no relevant
  document has no defined score: `mean_over_queries` leaves it out and counts it as skipped, as BEIR does.
  An empty ranking scores 0.
- nDCG uses gains = grade (linear, as trec_eval's ndcg_cut) and log2(rank + 1) discounts; the ideal ranking is
  the judged documents sorted by grade.
- Classification metrics take parallel lists of gold and predicted labels. Macro-F1 averages over the classes
  named in `labels` (default: every class seen in gold or predictions); a class with no predictions and no gold
  support is left out of the average, one with support but no predictions scores F1 = 0.
- AUROC is the Mann-Whitney statistic: the probability that a random positive outranks a random negative, with
  ties counting one half. It is undefined (None) when either class is absent.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

# ------------------------------------------------------------------------------------------------
# Ranking
# ------------------------------------------------------------------------------------------------


def _dedupe(ranked: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranked))


def _positive(relevant: Mapping[str, float]) -> dict[str, float]:
    return {doc: float(grade) for doc, grade in relevant.items() if grade > 0}


def dcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int) -> float:
    """Discounted cumulative gain of the first k results: sum of grade / log2(rank + 1), rank from 1."""
    rel = _positive(relevant)
    return sum(rel.get(doc, 0.0) / math.log2(i + 2) for i, doc in enumerate(_dedupe(ranked)[:k]))


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float | None:
    """DCG@k divided by the DCG@k of the ideal ranking; None when nothing is relevant."""
    rel = _positive(relevant)
    if not rel:
        return None
    ideal = sorted(rel.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg_at_k(ranked, rel, k) / idcg


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 100) -> float | None:
    """Share of the relevant documents found in the first k; None when nothing is relevant."""
    rel = _positive(relevant)
    if not rel:
        return None
    return len(set(_dedupe(ranked)[:k]) & set(rel)) / len(rel)


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float | None:
    """Relevant documents among the first k, divided by k (not by the number returned, as trec_eval)."""
    rel = _positive(relevant)
    if not rel:
        return None
    return len(set(_dedupe(ranked)[:k]) & set(rel)) / k


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, float], k: int = 10) -> float | None:
    """1 / rank of the first relevant document within the first k (0 if none); None when nothing is relevant."""
    rel = _positive(relevant)
    if not rel:
        return None
    for i, doc in enumerate(_dedupe(ranked)[:k]):
        if doc in rel:
            return 1.0 / (i + 1)
    return 0.0


def mean_over_queries(scores: Iterable[float | None]) -> tuple[float | None, int, int]:
    """(mean of the defined scores, queries scored, queries skipped for having no relevant document)."""
    values = list(scores)
    defined = [s for s in values if s is not None]
    mean = sum(defined) / len(defined) if defined else None
    return mean, len(defined), len(values) - len(defined)


def precision_recall_at_ks(ranked: Sequence[str], relevant: Mapping[str, float],
                           ks: Sequence[int]) -> list[tuple[float, float]] | None:
    """(precision@k, recall@k) for each k: one query's precision-recall curve by cut-off."""
    rel = _positive(relevant)
    if not rel:
        return None
    return [(precision_at_k(ranked, rel, k) or 0.0, recall_at_k(ranked, rel, k) or 0.0) for k in ks]


# ------------------------------------------------------------------------------------------------
# Classification
# ------------------------------------------------------------------------------------------------


def accuracy(gold: Sequence[Hashable], predicted: Sequence[Hashable]) -> float | None:
    """Share of exact matches; None for no items."""
    _same_length(gold, predicted)
    if not gold:
        return None
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts; 0 where a denominator is 0 (scikit-learn's zero_division=0)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def per_class(gold: Sequence[Hashable], predicted: Sequence[Hashable],
              labels: Sequence[Hashable] | None = None) -> dict[Any, dict[str, float]]:
    """Precision, recall, F1 and support of every class."""
    _same_length(gold, predicted)
    labels = list(labels) if labels is not None else _labels(gold, predicted)
    out: dict[Any, dict[str, float]] = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted))
        out[label] = {**prf(tp, fp, fn), "support": sum(g == label for g in gold), "predicted": tp + fp}
    return out


def macro_f1(gold: Sequence[Hashable], predicted: Sequence[Hashable],
             labels: Sequence[Hashable] | None = None) -> float | None:
    """Unweighted mean F1 over the classes (classes with neither support nor predictions left out)."""
    rows = [r for r in per_class(gold, predicted, labels).values() if r["support"] or r["predicted"]]
    if not rows:
        return None
    return sum(r["f1"] for r in rows) / len(rows)


def confusion_matrix(gold: Sequence[Hashable], predicted: Sequence[Hashable],
                     labels: Sequence[Hashable] | None = None) -> tuple[list[Any], list[list[int]]]:
    """(labels, counts) with counts[i][j] = items of gold class i predicted as class j. Labels outside
    `labels` (when given) are not counted."""
    _same_length(gold, predicted)
    labels = list(labels) if labels is not None else _labels(gold, predicted)
    index = {label: i for i, label in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, predicted):
        if g in index and p in index:
            counts[index[g]][index[p]] += 1
    return labels, counts


def auroc(y_true: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)), ties counted one half; None if a class
    is missing. Computed from average ranks, O(n log n)."""
    _same_length(y_true, scores)
    n_pos = sum(1 for y in y_true if y)
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # average rank over each run of tied scores
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for m in range(i, j + 1):
            ranks[order[m]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, y_true) if y)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def pr_curve(y_true: Sequence[bool], scores: Sequence[float]) -> dict[str, list[float]] | None:
    """Precision and recall at every distinct score threshold (score >= threshold is positive), highest
    threshold first, plus average precision (step-wise, as scikit-learn). None when there is no positive."""
    _same_length(y_true, scores)
    n_pos = sum(1 for y in y_true if y)
    if n_pos == 0:
        return None
    pairs = sorted(zip(scores, y_true), key=lambda sy: -sy[0])
    precision, recall, thresholds = [], [], []
    tp = fp = 0
    i = 0
    while i < len(pairs):
        threshold = pairs[i][0]
        while i < len(pairs) and pairs[i][0] == threshold:  # a threshold takes all its ties at once
            tp += bool(pairs[i][1])
            fp += not pairs[i][1]
            i += 1
        precision.append(tp / (tp + fp))
        recall.append(tp / n_pos)
        thresholds.append(float(threshold))
    ap = sum((r - r_prev) * p for p, r, r_prev in zip(precision, recall, [0.0] + recall[:-1]))
    return {"precision": precision, "recall": recall, "thresholds": thresholds, "average_precision": ap}


def binary_at_threshold(y_true: Sequence[bool], scores: Sequence[float], threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of `score >= threshold` as the positive call."""
    tp = sum(1 for y, s in zip(y_true, scores) if y and s >= threshold)
    fp = sum(1 for y, s in zip(y_true, scores) if not y and s >= threshold)
    fn = sum(1 for y, s in zip(y_true, scores) if y and s < threshold)
    return {"threshold": threshold, **prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}


# ------------------------------------------------------------------------------------------------
# Field-level matching (extraction)
# ------------------------------------------------------------------------------------------------


def set_prf(gold: Sequence[Any], predicted: Sequence[Any], match: Any = None) -> dict[str, float]:
    """Precision/recall/F1 between two bags of values under `match(gold_value, predicted_value) -> bool`
    (default equality). Each gold value can be matched once (greedy, in order), so duplicates do not
    inflate recall. Counts are returned too, so callers can micro-average over documents."""
    match = match or (lambda a, b: a == b)
    unused = list(range(len(gold)))
    tp = 0
    for p in predicted:
        for gi in unused:
            if match(gold[gi], p):
                unused.remove(gi)
                tp += 1
                break
    fp, fn = len(predicted) - tp, len(gold) - tp
    return {**prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}


def micro_prf(rows: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Micro-average of `set_prf` results: sum the counts, then compute P/R/F1."""
    tp = fp = fn = 0
    for row in rows:
        tp, fp, fn = tp + int(row["tp"]), fp + int(row["fp"]), fn + int(row["fn"])
    return {**prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}


# ------------------------------------------------------------------------------------------------
# Latency
# ------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, p50, p90, p95, p99 and max, in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "mean_ms": sum(ms) / len(ms) if ms else None, "p50_ms": percentile(ms, 50),
            "p90_ms": percentile(ms, 90), "p95_ms": percentile(ms, 95), "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None}


# ------------------------------------------------------------------------------------------------


def _labels(*columns: Sequence[Hashable]) -> list[Any]:
    seen = dict.fromkeys(v for column in columns for v in column)
    try:
        return sorted(seen)  # type: ignore[type-var]
    except TypeError:
        return list(seen)


def _same_length(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"gold and predicted differ in length ({len(a)} vs {len(b)})")
