"""Study-design prediction from title and abstract, with numpy only.

New PubMed records often arrive before NLM has indexed their publication types, so grading cannot wait for
"Randomized Controlled Trial" to appear. This module loads the committed model (a TF-IDF vocabulary, idf weights
and multinomial logistic-regression coefficients exported to JSON by `train.py`) and reproduces scikit-learn's
`TfidfVectorizer` + `LogisticRegression.predict_proba` exactly, so inference needs no scikit-learn and no pickle.

The text analyser lives here, not in `train.py`, because training passes this very function to scikit-learn as
its analyser: the features seen in training and at inference cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_DIR = Path(__file__).resolve().parent / "model"
WEIGHTS_FILE = "weights.json"

# The design vocabulary. Order matters only inside a weights file, which records its own label order.
LABELS: tuple[str, ...] = ("rct", "preclinical", "cohort", "case_control", "cross_sectional")

# Bump when `analyse` changes: a weights file trained with another analyser version must not load silently.
ANALYSER_VERSION = 1

# Spelling variants folded together so British and American abstracts share features. Kept tiny on purpose:
# each entry is a design or topic word that occurs in both spellings across the training sources.
_SPELLING = (
    (re.compile(r"randomis"), "randomiz"),
    (re.compile(r"tumour"), "tumor"),
)
# Words start with a letter; pure numbers (p-values, doses, dates) are dropped, because their formatting differs
# between corpora far more than their meaning does. Hyphens and punctuation split words, so HoC's tokenised
# "( GHS-R ) ," and ordinary "(GHS-R)," give the same tokens.
_TOKEN = re.compile(r"[a-z][a-z0-9]+")
_LEADING_ABSTRACT = re.compile(r"^\s*abstract\b[\s:.]*")
# Structured-abstract headings left inline in the text ("RESULTS :" in some Hallmarks of Cancer abstracts, where
# other corpora keep them as separate labels). They say how a publisher formats, not how a study was designed.
_INLINE_HEADING = re.compile(
    r"\b(?:(?:UNLABELLED |MINI )?ABSTRACT|BACKGROUND(?: AND AIMS?)?|OBJECTIVES?|AIMS?|PURPOSE|INTRODUCTION|CONTEXT"
    r"|(?:MATERIALS?|PATIENTS|SUBJECTS) AND METHODS|METHODS?|STUDY DESIGN|DESIGN|SETTING|RESULTS|FINDINGS"
    r"|CONCLUSIONS?|INTERPRETATION|SUMMARY|GENERAL SIGNIFICANCE)\s*:")


def normalise_text(text: str) -> str:
    """Unicode-fold, lower-case and spelling-fold `text`; drop inline section headings and a leading "Abstract"."""
    text = _INLINE_HEADING.sub(" ", unicodedata.normalize("NFKC", text).replace("\ufffd", " ")).lower()
    text = _LEADING_ABSTRACT.sub("", text)
    for pattern, replacement in _SPELLING:
        text = pattern.sub(replacement, text)
    return text


def tokenise(text: str) -> list[str]:
    """Words of the normalised text (see `_TOKEN` for why numbers and punctuation go)."""
    return _TOKEN.findall(normalise_text(text))


def analyse(text: str) -> list[str]:
    """Unigrams and adjacent-word bigrams: the features. Training hands this function to scikit-learn."""
    words = tokenise(text)
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def document_text(title: str, abstract: str) -> str:
    """The text a record is classified on: title and abstract (either may be empty)."""
    return " ".join(part.strip() for part in (title, abstract) if part and part.strip())


@dataclass(frozen=True)
class DesignPrediction:
    """A predicted design. `top_terms` are the features that pushed most towards `label` (strongest first)."""

    label: str
    probabilities: dict[str, float]
    rct_probability: float
    top_terms: list[str] = field(default_factory=list)


class ModelFileError(ValueError):
    """The weights file is missing, malformed, or was written for another analyser version."""


class DesignModel:
    """TF-IDF (sublinear tf, smoothed idf, l2 norm) followed by a softmax over linear class scores."""

    def __init__(self, labels: list[str], vocabulary: list[str], idf: np.ndarray, coef: np.ndarray,
                 intercept: np.ndarray) -> None:
        if coef.shape != (len(labels), len(vocabulary)) or idf.shape != (len(vocabulary),):
            raise ModelFileError(f"inconsistent shapes: coef {coef.shape}, idf {idf.shape}, "
                                 f"{len(labels)} labels, {len(vocabulary)} terms")
        self.labels = list(labels)
        self.index = {term: i for i, term in enumerate(vocabulary)}
        self.terms = list(vocabulary)
        self.idf = idf            # (n_terms,)
        self.coef = coef          # (n_labels, n_terms)
        self.intercept = intercept  # (n_labels,)
        # Explanations ask "why this class rather than the others": a term's weight for class k minus its mean
        # weight over all classes, precomputed once. (n_labels, n_terms)
        self._relative = coef - coef.mean(axis=0, keepdims=True)

    @classmethod
    def load(cls, directory: Path | str = MODEL_DIR) -> DesignModel:
        """Read `weights.json` from `directory` (the committed model by default)."""
        path = Path(directory) / WEIGHTS_FILE
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"cannot read design model {path}: {exc}") from exc
        if blob.get("analyser_version") != ANALYSER_VERSION:
            raise ModelFileError(f"{path} was written for analyser version {blob.get('analyser_version')}, "
                                 f"this code has {ANALYSER_VERSION}: retrain")
        return cls(labels=blob["labels"], vocabulary=blob["vocabulary"],
                   idf=np.asarray(blob["idf"], dtype=np.float64),
                   coef=np.asarray(blob["coef"], dtype=np.float64),
                   intercept=np.asarray(blob["intercept"], dtype=np.float64))

    def strongest_terms(self, n: int) -> dict[str, list[str]]:
        """The `n` terms that argue most for each label over the others: where corpus artefacts would show."""
        return {label: [self.terms[j] for j in np.argsort(-self._relative[k])[:n]]
                for k, label in enumerate(self.labels)}

    def features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Sparse TF-IDF row of `text` as (term indices, l2-normalised weights); unknown terms are ignored."""
        counts = Counter(t for t in analyse(text) if t in self.index)
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        idx = np.fromiter((self.index[t] for t in counts), dtype=np.int64, count=len(counts))
        tf = np.fromiter((1.0 + math.log(n) for n in counts.values()), dtype=np.float64, count=len(counts))
        weights = tf * self.idf[idx]
        return idx, weights / np.linalg.norm(weights)

    def probabilities(self, text: str) -> np.ndarray:
        """Class probabilities in `self.labels` order. (n_labels,)"""
        idx, weights = self.features(text)
        scores = self.intercept + self.coef[:, idx] @ weights
        scores = scores - scores.max()
        exp = np.exp(scores)
        return exp / exp.sum()

    def predict(self, title: str, abstract: str, n_terms: int = 8) -> DesignPrediction:
        """Predict the design of one record and name the `n_terms` features that argued most for it.

        Blank input raises ValueError: the answer would be the training prior, which looks like a prediction.
        """
        text = document_text(title, abstract)
        if not text:
            raise ValueError("nothing to classify: title and abstract are both empty")
        probs = self.probabilities(text)
        best = int(np.argmax(probs))
        idx, weights = self.features(text)
        contribution = self._relative[best, idx] * weights
        order = np.argsort(-contribution)
        top = [self.terms[idx[i]] for i in order[:n_terms] if contribution[i] > 0]
        by_label = {label: float(p) for label, p in zip(self.labels, probs)}
        return DesignPrediction(label=self.labels[best], probabilities=by_label,
                                rct_probability=by_label.get("rct", 0.0), top_terms=top)


@lru_cache(maxsize=1)
def default_model() -> DesignModel:
    """The committed model, read once per process."""
    return DesignModel.load(MODEL_DIR)


def predict_design(title: str, abstract: str) -> DesignPrediction:
    """Design of a record from its title and abstract, using the committed model."""
    return default_model().predict(title, abstract)
