"""Answers that take a position: yes / no / maybe for a polar question ("Does X improve Y?"), from the evidence, with
the evidence sentence that carries it.

    question + record text ──> answer classifier (question, results-first evidence) ──> yes / no / maybe + p
                           └─> findings models: the result sentence that best matches the question, its direction

Why both: the classifier was trained on expert yes/no/maybe labels (PubMedQA, the train half) and reads the whole
evidence; the result sentence is what a clinician checks the answer against, so it is quoted with its direction and
citation. The position is the classifier's; the sentence is evidence, never a second vote. Without the classifier
the direction of the best-matching comparison decides (significant -> yes, no difference -> no), which is the
rule `eval qa` reports as `direction-rule`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from synthesis.text import content_words, overlap, sentences_of

_POLAR = re.compile(r"^\s*(?:does|do|did|is|are|was|were|can|could|should|will|would|has|have|had|may|might|"
                    r"must)\b", re.IGNORECASE)
ANSWERS = ("yes", "no", "maybe")


def is_polar(question: str) -> bool:
    """A yes/no question: it starts with an auxiliary verb."""
    return bool(_POLAR.match(question))


@dataclass
class Position:
    answer: str               # yes | no | maybe
    confidence: float
    basis: str                # "answer-model" | "direction-rule"
    probabilities: dict[str, float]
    record_id: str | None = None
    quote: str | None = None  # the result sentence that carries it (verbatim in the record)
    direction: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_result_sentence(question: str, text: str, models: Any) -> tuple[str, str, float] | None:
    """(sentence, direction, confidence) of the result sentence of `text` that best matches the question."""
    if models is None:
        return None
    reading = models.read(sentences_of(text))
    scored = [(r.result_probability + overlap(question, r.sentence.text), r) for r in reading.sentences
              if r.result_probability >= 0.25 and content_words(r.sentence.text) & content_words(question)]
    if not scored:
        return None
    _, best = max(scored, key=lambda pair: pair[0])
    outcome = max(best.outcomes, key=lambda p: len(p.text)).text if best.outcomes else ""
    intervention = best.interventions[0].text if best.interventions else ""
    comparator = best.comparators[0].text if best.comparators else ""
    direction, confidence, _ = models.directions([(intervention, comparator, outcome, best.sentence.text)])[0]
    return best.sentence.text, direction, confidence


def take_position(question: str, text: str, *, answerer: Any = None, models: Any = None,
                  record_id: str | None = None, force: bool = False) -> Position | None:
    """The position `text` (one record's evidence: results first is best) supports on `question`; None for a
    question that is not polar (unless `force`: PubMedQA titles-as-questions) or when neither model is there."""
    if (not force and not is_polar(question)) or (answerer is None and models is None):
        return None
    carried = best_result_sentence(question, text, models)
    quote, direction = (carried[0], carried[1]) if carried else (None, None)
    if answerer is not None:
        probs = answerer.probabilities(question, text)
        answer = max(probs, key=probs.__getitem__)
        return Position(answer, round(probs[answer], 4), "answer-model", probs, record_id, quote, direction)
    if carried is None:
        return None
    answer = "no" if direction == "no significant difference" else "yes"
    return Position(answer, round(carried[2], 4), "direction-rule", {answer: round(carried[2], 4)}, record_id,
                    quote, direction)
