"""The findings models at work: read an abstract once, find its result sentences, name what they compare, and
say which way each comparison went.

    sentences ──> reader (one batched pass) ──> result-sentence probability per sentence
                                            └─> intervention / comparator / outcome spans per sentence
    result sentences + their I/C/O ──> direction model ──> increased / decreased / no difference + confidence

Why one reader pass for two jobs: on 2 CPU cores the budget is 0.2 s an abstract for everything; one encoder pass
over ~12 sentences (~25 ms each in a batch) both scores and tags them, and only the few result sentences go on to
the direction model. Every phrase is a span of the sentence (offsets kept), so quotes are verbatim by
construction; the caller still runs the verifier over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.records.article import Article
from synthesis.findings_models.encoder import TAG_LABELS, LoadedModel, load_artifact
from synthesis.findings_models.inputs import collate, encode_direction, encode_reader
from synthesis.text import Sentence, article_sentences, content_words, overlap

SHIPPED = Path(__file__).resolve().parent / "artifacts"
"""The trained artifacts shipped in the package (a few MB each; cards in each folder)."""
READER = "minilm-reader"
DIRECTION = "minilm-direction"
RESULT_THRESHOLD = 0.5
"""A sentence counts as a result sentence at this calibrated probability (the natural cut of a two-class softmax;
not tuned)."""
FALLBACK_THRESHOLD = 0.25
"""With no sentence above RESULT_THRESHOLD, the best one still counts if it reaches this."""
MAX_COMPARISONS = 8
CACHE_SIZE = 512
"""Readings kept for `extract()` after a batched `read_many` (a backfill's batch is far smaller)."""
Arms = tuple[str | None, str | None]
DIRECTIONS = ("increased", "decreased", "no significant difference")
RANK_WEIGHTS = (1.0, 0.3, 0.15)
"""Weights of outcome, intervention and comparator word overlap added to the result probability when ranking
sentences for a question; DIRECTION_TOP_K and DIRECTION_TAU say how many ranked sentences the direction model
reads and how sharply their votes follow the ranking. Chosen on the findings models' dev articles (`oncolit eval
extraction --split dev`, never validation) as the best neighbourhood of a small grid, not its single best cell."""
DIRECTION_TOP_K = 2
DIRECTION_TAU = 0.5


@dataclass(frozen=True)
class Phrase:
    """A verbatim span of the record text (`text == record_text[start:end]`)."""

    text: str
    start: int
    end: int


@dataclass
class ReadSentence:
    sentence: Sentence
    result_probability: float
    interventions: list[Phrase] = field(default_factory=list)
    comparators: list[Phrase] = field(default_factory=list)
    outcomes: list[Phrase] = field(default_factory=list)


@dataclass(frozen=True)
class PromptDirection:
    """The answer to one (I, C, O) question: the best sentence for it and the mixed direction."""

    sentence: ReadSentence
    direction: str
    confidence: float
    probabilities: dict[str, float]


@dataclass
class Comparison:
    """One reported comparison: its result sentence, what it compares, and the direction of the result."""

    sentence: Sentence
    result_probability: float
    outcome: Phrase | None
    intervention: Phrase | None
    comparator: Phrase | None
    direction: str
    confidence: float
    probabilities: dict[str, float]


@dataclass
class Reading:
    """Everything the models read from one abstract."""

    sentences: list[ReadSentence]
    interventions: list[Phrase]
    comparator: Phrase | None
    comparisons: list[Comparison]

    def result_sentences(self) -> list[ReadSentence]:
        return sorted((s for s in self.sentences if s.sentence.section != "TITLE"),
                      key=lambda s: -s.result_probability)


def _softmax(logits: Any, temperature: float) -> Any:
    return (logits / temperature).softmax(-1)


def _spans(tags: list[int], offsets: list[tuple[int, int]], text: str) -> list[tuple[str, int, int]]:
    """BIO word-piece tags -> (kind, start, end) character spans widened to whole words."""
    out: list[tuple[str, int, int]] = []
    current: list[Any] | None = None
    for tag, (s, e) in zip(tags, offsets):
        if e <= s:
            continue
        label = TAG_LABELS[tag]
        if label == "O":
            current = None
            continue
        prefix, kind = label.split("-")
        continuing = current is not None and current[0] == kind and (prefix == "I" or s == current[2])
        if continuing and current is not None:
            current[2] = e
        else:
            current = [kind, s, e]
            out.append(current)  # type: ignore[arg-type]
    spans = []
    for kind, s, e in out:  # type: ignore[misc]
        while s > 0 and text[s - 1].isalnum():
            s -= 1
        while e < len(text) and text[e].isalnum():
            e += 1
        while e > s and text[e - 1] in " ,;:.(":
            e -= 1
        words = content_words(text[s:e])
        if words and not words <= _UNITS and not all(w.replace(".", "").isdigit() for w in words):
            spans.append((kind, s, e))
    return spans


_UNITS = frozenset("mg kg ml mcg µg ug dose doses mg/kg mg/m2 mg/m h hour hours day days week weeks month months "
                   "year years times daily weekly".split())


def _main_arms(phrases: list[Phrase], limit: int) -> list[Phrase]:
    """The arms an abstract compares: the most mentioned phrase, then others mentioned at least twice (a name
    said once is usually a co-medication or a dose, not an arm)."""
    counts: dict[frozenset[str], int] = {}
    for p in phrases:
        key = frozenset(content_words(p.text))
        counts[key] = counts.get(key, 0) + 1
    ranked = _distinct(phrases, limit)
    def mentions(p: Phrase) -> int:
        words = frozenset(content_words(p.text))
        return sum(n for k, n in counts.items() if k <= words or words <= k)
    return [p for i, p in enumerate(ranked) if i == 0 or mentions(p) >= 2]


def _distinct(phrases: list[Phrase], limit: int) -> list[Phrase]:
    """Phrases by how often their words recur, first mention kept; one per set of content words."""
    groups: dict[frozenset[str], list[Phrase]] = {}
    for p in phrases:
        key = frozenset(content_words(p.text))
        if not key:
            continue
        same = next((k for k in groups if k <= key or key <= k), None)
        groups.setdefault(same if same is not None else key, []).append(p)
    ranked = sorted(groups.values(), key=lambda g: (-len(g), g[0].start))
    return [min(g, key=lambda p: (len(p.text), p.start)) for g in ranked[:limit]]


def _same(a: Phrase, b: Phrase) -> bool:
    """Whether two phrases name the same thing (one's content words hold the other's)."""
    wa, wb = content_words(a.text), content_words(b.text)
    return bool(wa and wb and (wa <= wb or wb <= wa))


class FindingsModels:
    """The reader and the direction model, loaded once (a few hundred ms) and reused for every record."""

    def __init__(self, reader: LoadedModel, direction: LoadedModel, *, batch_size: int = 32):
        self.reader = reader
        self.direction_model = direction
        self.batch_size = batch_size
        self.name = f"{reader.spec.name}+{direction.spec.name}"
        self._cache: dict[Any, Reading] = {}  # readings by (sentences, arms), bounded

    @classmethod
    def load(cls, folder: Path | None = None, threads: int | None = None) -> FindingsModels:
        folder = folder or SHIPPED
        return cls(load_artifact(folder / READER, threads), load_artifact(folder / DIRECTION, threads))

    @staticmethod
    def available(folder: Path | None = None) -> bool:
        folder = folder or SHIPPED
        return all((folder / name / "model.json").is_file() for name in (READER, DIRECTION))

    # -- the reader ---------------------------------------------------------------------------

    def read_sentences(self, sentences: list[Sentence]) -> list[ReadSentence]:
        import torch

        model = self.reader
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i].text))  # similar lengths: less padding
        done: dict[int, ReadSentence] = {}
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                chunk = [sentences[i] for i in order[b:b + self.batch_size]]
                encoded = [encode_reader(model.tokenizer, "" if s.section == "TITLE" else s.section, s.text,
                                         model.spec.max_len) for s in chunk]
                inputs = collate(encoded)
                logits, tags = model.module(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
                probs = _softmax(logits, model.spec.temperature)[:, 1].tolist()
                for i, s in enumerate(chunk):
                    width = len(encoded[i].input_ids)
                    read = ReadSentence(s, 0.0 if s.section == "TITLE" else float(probs[i]))
                    for kind, a, e in _spans(tags[i, :width].argmax(-1).tolist(), encoded[i].offsets, s.text):
                        phrase = Phrase(s.text[a:e], s.start + a, s.start + e)
                        {"INT": read.interventions, "CMP": read.comparators, "OUT": read.outcomes}[kind].append(phrase)
                    done[order[b + i]] = read
        return [done[i] for i in range(len(sentences))]

    # -- the direction model ------------------------------------------------------------------

    def directions(self, items: list[tuple[str, str, str, str]]) -> list[tuple[str, float, dict[str, float]]]:
        """(intervention, comparator, outcome, sentence) -> (direction, confidence, probabilities)."""
        import torch

        model = self.direction_model
        out = []
        with torch.inference_mode():
            for b in range(0, len(items), self.batch_size):
                encoded = [encode_direction(model.tokenizer, i, c, o, s, model.spec.max_len)
                           for i, c, o, s in items[b:b + self.batch_size]]
                inputs = collate(encoded)
                logits, _ = model.module(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
                for row in _softmax(logits, model.spec.temperature).tolist():
                    k = max(range(len(row)), key=row.__getitem__)
                    out.append((DIRECTIONS[k], float(row[k]), dict(zip(DIRECTIONS, (round(x, 4) for x in row)))))
        return out

    # -- one abstract -------------------------------------------------------------------------

    def read_article(self, article: Article, text: str | None = None, arms: Arms = (None, None)) -> Reading:
        """`text`: a same-offsets copy of the record text to read instead (the clean text); `arms`: the
        (intervention, comparator) the rule readers found, used where the tagger names none."""
        return self.read(article_sentences(article, text), arms)

    def read(self, all_sentences: list[Sentence], arms: Arms = (None, None)) -> Reading:
        return self.read_many([all_sentences], [arms])[0]

    def read_many(self, texts: list[list[Sentence]], arms: list[Arms] | None = None) -> list[Reading]:
        """Readings of several abstracts with the sentences of all of them in shared batches (backfills: one
        pass over many records instead of one small pass per record). Recent readings are kept, so a record
        read here and again by `extract()` is read once."""
        arms = arms or [(None, None)] * len(texts)
        keys = [(tuple((s.start, s.end, s.text) for s in sentences), a) for sentences, a in zip(texts, arms)]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        flat = [s for i in todo for s in texts[i] if s.text.strip()]
        read = iter(self.read_sentences(flat))
        per_text = [[next(read) for s in texts[i] if s.text.strip()] for i in todo]
        plans = [self._plan(sentences, arms[i]) for i, sentences in zip(todo, per_text)]
        calls = iter(self.directions([item for plan in plans for item in plan[3]]))
        fresh: dict[int, Reading] = {}
        for i, sentences, plan in zip(todo, per_text, plans):
            interventions, comparator, chosen, items = plan
            comparisons = [Comparison(s.sentence, s.result_probability, o, iv, c, *next(calls))
                           for (s, o, iv, c), _item in zip(chosen, items)]
            fresh[i] = Reading(sentences, interventions, comparator, comparisons)
        out = [fresh[i] if i in fresh else self._cache[k] for i, k in enumerate(keys)]
        for i, reading in fresh.items():  # keep the most recent CACHE_SIZE readings
            self._cache.pop(keys[i], None)
            self._cache[keys[i]] = reading
        while len(self._cache) > CACHE_SIZE:
            self._cache.pop(next(iter(self._cache)))
        return out

    def _plan(self, sentences: list[ReadSentence],
              arms: Arms = (None, None)) -> tuple[list[Phrase], Phrase | None, list[Any], list[Any]]:
        """Article-level arms, the result sentences chosen, and the direction model's inputs for them (the
        rule readers' arms stand in, as words for the direction model only, where the tagger found none)."""
        comparators = _distinct([p for s in sentences for p in s.comparators], 1)
        comparator = comparators[0] if comparators else None
        interventions = [p for p in _main_arms([p for s in sentences for p in s.interventions], 5)
                         if comparator is None or not _same(p, comparator)][:3]
        ranked = [s for s in sorted(sentences, key=lambda s: -s.result_probability) if s.sentence.section != "TITLE"]
        chosen = [s for s in ranked if s.result_probability >= RESULT_THRESHOLD][:MAX_COMPARISONS]
        if not chosen and ranked and ranked[0].result_probability >= FALLBACK_THRESHOLD:
            chosen = ranked[:1]
        chosen.sort(key=lambda s: s.sentence.start)
        plans = []
        for s in chosen:
            intervention = s.interventions[0] if s.interventions else (interventions[0] if interventions else None)
            other = s.comparators[0] if s.comparators else comparator
            if intervention is not None and other is not None and _same(intervention, other):
                other = comparator if comparator is not None and not _same(intervention, comparator) else None
            outcome = max(s.outcomes, key=lambda p: len(p.text)) if s.outcomes else None
            plans.append((s, outcome, intervention, other))
        rule_i, rule_c = arms
        items = [(i.text if i else (rule_i or ""), c.text if c else (rule_c or ""), o.text if o else "",
                  s.sentence.text) for s, o, i, c in plans]
        return interventions, comparator, plans, items

    def ranked_for(self, reading: Reading, intervention: str, comparator: str,
                   outcome: str) -> list[tuple[float, ReadSentence]]:
        """The abstract's sentences best first for one (I, C, O) question, with their scores: a result sentence
        that names its outcome (and arms) wins. RANK_WEIGHTS were chosen on the dev split (see there)."""
        w_outcome, w_intervention, w_comparator = RANK_WEIGHTS

        def score(s: ReadSentence) -> float:
            text = s.sentence.text
            return (s.result_probability + w_outcome * overlap(outcome, text)
                    + w_intervention * overlap(intervention, text) + w_comparator * overlap(comparator, text))
        scored = [(score(s), s) for s in reading.sentences if s.sentence.section != "TITLE"]
        return sorted(scored, key=lambda pair: -pair[0])

    def rank_for(self, reading: Reading, intervention: str, comparator: str, outcome: str) -> list[ReadSentence]:
        return [s for _score, s in self.ranked_for(reading, intervention, comparator, outcome)]

    def directions_for(self, reading: Reading, questions: list[tuple[str, str, str]]) -> list[PromptDirection | None]:
        """The direction of effect for each (intervention, comparator, outcome) question about one abstract.

        Why a mixture and not the top sentence alone: the ranking puts the evidence first for ~4 in 5 questions,
        and when it misses, the evidence is usually second; the direction model reads the DIRECTION_TOP_K best
        sentences and their probabilities are averaged with weights softmax(score / DIRECTION_TAU), so a clear
        second-ranked result can outvote a weak first one. All questions go to the direction model in one batch.
        """
        tops = [self.ranked_for(reading, i, c, o)[:DIRECTION_TOP_K] for i, c, o in questions]
        calls = iter(self.directions([(i, c, o, s.sentence.text) for (i, c, o), top in zip(questions, tops)
                                      for _score, s in top]))
        out: list[PromptDirection | None] = []
        for top in tops:
            if not top:
                out.append(None)
                continue
            best = top[0][0]
            weights = [math.exp((score - best) / DIRECTION_TAU) for score, _s in top]
            mixed = dict.fromkeys(DIRECTIONS, 0.0)
            for weight in weights:
                for label, p in next(calls)[2].items():
                    mixed[label] += weight * p / sum(weights)
            direction = max(mixed, key=mixed.__getitem__)
            out.append(PromptDirection(top[0][1], direction, round(mixed[direction], 4),
                                       {k: round(v, 4) for k, v in mixed.items()}))
        return out
