"""The yes / no / maybe answer classifier: a logistic-regression head over what the findings models read in the
evidence, plus a few words of hedging and significance.

Why a head over the findings models and not a fine-tuned cross-encoder: with the 253 expert-labelled PubMedQA
items we may train on, a LoRA-tuned MiniLM over (question, abstract) learnt only the majority answer (dev
macro-F1 0.24 after 150 steps, ~10 min of the 2 cores); what decides an answer is mostly whether the result
sentences that match the question report a significant difference, which the direction model already reads.
The head weighs those readings (12 numbers an item) and is trained in seconds, deterministically.

Features of (question, evidence), all in [0, 1] or small counts:
  best result sentence: result probability, question-word overlap, P(increased), P(decreased), P(no difference)
  mean over the top three result sentences: P(significant), P(no difference)
  share of sentences read as result sentences; hedging words, "no significant"/"did not" phrases, p < 0.05
  mentions (each per 100 words); whether the question holds a negation
Stored as `answer-head.json` (classes, feature names, coefficients, intercepts, the PMIDs trained on).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from synthesis.text import overlap, sentences_of

FEATURES = ("best_result_p", "best_overlap", "best_inc", "best_dec", "best_nosig", "top3_sig", "top3_nosig",
            "result_share", "hedges", "no_difference_phrases", "significant_p", "question_negation")
_HEDGE = re.compile(r"\b(?:may|might|could|possibl[ey]|unclear|uncertain|suggests?|trend|tended|appears?|"
                    r"further\s+(?:studies|research)|warrant|limited)\b", re.IGNORECASE)
_NO_DIFF = re.compile(r"\b(?:no\s+(?:statistically\s+)?significant|not\s+(?:statistically\s+)?significant|"
                      r"did\s+not\s+(?:differ|improve|change|reduce|increase)|similar|comparable|no\s+difference)\b",
                      re.IGNORECASE)
_SIG_P = re.compile(r"\bp\s*(?:<|≤|=)\s*0?\.0[0-4]\d*", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|no|without|never)\b", re.IGNORECASE)
FILE = "answer-head.json"


def features(question: str, evidence: str, models: Any) -> list[float]:
    reading = models.read(sentences_of(evidence))
    read = [r for r in reading.sentences if r.sentence.text.strip()]
    words = max(1, len(evidence.split()))
    scored = sorted(read, key=lambda r: -(r.result_probability + overlap(question, r.sentence.text)))
    top = [r for r in scored if r.result_probability >= 0.25][:3] or scored[:1]
    calls = models.directions([(_first(r.interventions), _first(r.comparators), _longest(r.outcomes),
                                r.sentence.text) for r in top]) if top else []
    probs = [c[2] for c in calls]
    best = probs[0] if probs else {"increased": 0.0, "decreased": 0.0, "no significant difference": 0.0}
    sig = [p["increased"] + p["decreased"] for p in probs]
    return [
        top[0].result_probability if top else 0.0,
        overlap(question, top[0].sentence.text) if top else 0.0,
        best["increased"], best["decreased"], best["no significant difference"],
        sum(sig) / len(sig) if sig else 0.0,
        sum(p["no significant difference"] for p in probs) / len(probs) if probs else 0.0,
        sum(r.result_probability >= 0.5 for r in read) / max(1, len(read)),
        100 * len(_HEDGE.findall(evidence)) / words,
        100 * len(_NO_DIFF.findall(evidence)) / words,
        100 * len(_SIG_P.findall(evidence)) / words,
        float(bool(_NEGATION.search(question))),
    ]


def _first(phrases: list[Any]) -> str:
    return phrases[0].text if phrases else ""


def _longest(phrases: list[Any]) -> str:
    return max(phrases, key=lambda p: len(p.text)).text if phrases else ""


class AnswerHead:
    """The trained head with the findings models it reads through; `probabilities` as `AnswerModel`'s."""

    def __init__(self, spec: dict[str, Any], models: Any):
        self.spec = spec
        self.models = models
        self.name = spec["name"]
        self.classes: list[str] = list(spec["classes"])
        self.trained_ids = set(spec.get("trained_pmids", ()))

    @classmethod
    def load(cls, folder: Path, models: Any) -> AnswerHead:
        return cls(json.loads((folder / FILE).read_text(encoding="utf-8")), models)

    @staticmethod
    def available(folder: Path) -> bool:
        return (folder / FILE).is_file()

    def probabilities(self, question: str, evidence: str) -> dict[str, float]:
        x = features(question, evidence, self.models)
        mean, scale = self.spec["mean"], self.spec["scale"]
        z = [(v - m) / s for v, m, s in zip(x, mean, scale)]
        logits = [b + sum(w * v for w, v in zip(row, z)) for row, b in zip(self.spec["coef"], self.spec["intercept"])]
        top = max(logits)
        exp = [math.exp(v - top) for v in logits]
        total = sum(exp)
        return {c: round(e / total, 4) for c, e in zip(self.classes, exp)}
