"""Question answering over the catalog: retrieve, rerank, decide whether the evidence answers, write
an answer whose every sentence cites a retrieved record and passes the citation invariant.

    question ─> hybrid search (filters) ─> rerank ─> enough evidence? ─no─> "insufficient" + closest records
                                                          │yes
                          LLM that generates ─> JSON sentences with citations ─> enforce (citations.py)
                          no LLM / backend none ─> extractive: the best supporting quotes, cited

Reranking (no cross-encoder exists offline, so a cheap, transparent one). For each of the `POOL`
best hybrid records:
    score = W_RANK * rank_score + W_COVERAGE * coverage + W_EVIDENCE * evidence
- rank_score = (RRF_K + 1) / (RRF_K + rank): the hybrid (dense + BM25, RRF-fused) rank, 1 at the top;
- coverage = share of the question's content words (stemmed, see `citations.content_terms`) found
  in the record's title + abstract (or trial text), each word weighted by its IDF within the pool,
  so a word every candidate has ("patients") counts for little and a rare one counts a lot;
- evidence = the payload's evidence level (1 strongest -> 1.0) or, before grading, a prior from the
  rule-based design label (meta-analysis 1.0 ... case report 0.2; unknown 0.4).

Insufficient evidence. The best reranked record must share the question's weighted content words
and be close to it in meaning: coverage + cosine >= MIN_SUPPORT, where cosine is the dense
(MiniLM) cosine of its best chunk. Hybrid scores cannot serve: RRF scores depend only on ranks, so
something always ranks first. A sum beat requiring each feature above its own threshold (see below).

Calibration (weights and threshold), on recorded questions over two recorded corpora:
- A: the QA test corpus's big sibling (92 records: PubMedQA oncology subset, the NEJM trametinib
  RCT, CT.gov studies). Answerable: 88 PubMedQA questions whose record is indexed + 9 hand-written
  paraphrases. Unanswerable: 80 PubMedQA questions about non-oncology records + 10 hand-written
  off-topic questions (veterinary surgery, vaccines, sport).
- B: 150 oncology RCT abstracts from evidence-inference. Answerable: 150 of its ICO prompts as
  questions ("What is the effect of I compared with C on O?"). Unanswerable: 100 prompts about
  non-oncology abstracts that are not indexed.
Reranking, hit@1 of the record the question was written from (hybrid alone: A 1.000, B 0.960):
  W = 0.85/0.10/0.05 -> A 1.000, B 0.967 (MRR 0.973);  0.5/0.45/0.05 -> B 0.947;  coverage alone -> B 0.933.
  Hybrid retrieval is already strong; coverage earns a small weight (it mostly breaks near-ties).
Gate (on the top record under those weights), share of answerable questions answered / unanswerable
ones flagged:
  coverage + cosine >= 0.95 -> A 1.000 / 0.978, B 0.933 / 0.970
  (0.90 -> B 0.940 / 0.960; 1.00 -> B 0.907 / 0.970; coverage >= 0.4 and cosine >= 0.35 -> B 0.933 / 0.960).
These are in-sample figures (no held-out split): treat them as a sanity check, and recalibrate with
the eval harness when the embedder or the corpus changes. Coverage uses IDF within the retrieved
pool, so it reads "how much of what is specific to this question does the record hold".
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from index.search import RecordHit
from index.store import SearchFilter
from ingest.errors import RecordNotFound
from synthesis.citations import (
    citation_ids,
    citation_tag,
    content_terms,
    enforce,
    split_sentences,
    with_citations,
)
from synthesis.injection import blank_spans, clean_passage, find_instructions, redact
from synthesis.llm.base import LLM, LLMError
from synthesis.prompts_qa import ANSWER_V1, answer_messages, answer_schema
from synthesis.quotes import best_quote
from synthesis.readers import record_text  # the one text the citation invariant checks against
from synthesis.replies import cited_sentences, parse_reply

log = logging.getLogger(__name__)

# Candidates reranked per question: enough that the right record is almost always among them.
POOL = 24
RRF_K = 60
# Reranking weights (calibrated: see the module docstring).
W_RANK, W_COVERAGE, W_EVIDENCE = 0.85, 0.10, 0.05
# The gate: coverage + cosine of the best reranked record must reach this (calibrated, ditto).
MIN_SUPPORT = 0.95
# Records shown to the model, sentences in an extractive answer, closest records listed.
LLM_RECORDS = 5
EXTRACTIVE_SENTENCES = 3
CLOSEST = 5
# Completion budget of an answer (2-4 sentences of JSON).
MAX_TOKENS = 320
EXTRACTIVE = "extractive"
INSUFFICIENT_TEXT = ("The indexed records do not answer this question. "
                     "The closest records are listed for reading.")
_CHARS_PER_TOKEN = 3.2  # conservative for English prose with numbers

# Evidence prior by design label until a grade exists (synthesis/rules/design.py vocabulary).
DESIGN_PRIOR = {
    "meta_analysis": 1.0, "systematic_review": 0.9, "guideline": 0.8, "rct": 0.8,
    "non_randomised_controlled": 0.6, "single_arm_trial": 0.5, "cohort": 0.5, "case_control": 0.45,
    "cross_sectional": 0.4, "case_series": 0.3, "narrative_review": 0.3, "case_report": 0.2,
    "preclinical": 0.15, "editorial": 0.1,
}
UNKNOWN_PRIOR = 0.4
# Question words that carry no topic (on top of citations.STOPWORDS).
_QUESTION_WORDS = {"does", "doe", "do", "is", "are", "can", "could", "should", "would", "what", "which",
                   "how", "why", "when", "who", "whether", "there", "any", "effec", "role", "use", "usefu",
                   "value", "worth", "impac", "influ", "assoc", "relat", "predi", "impro"}


@dataclass
class Candidate:
    """One retrieved record with the features the reranker and the gate use."""

    record_id: str
    title: str
    text: str            # the record's text (`record_text`), as the catalog has it
    planted: list[tuple[int, int]]  # spans of `text` that address a model: never quoted, never evidence
    passage: str         # the best-matching chunk, planted instructions blanked
    rank: int            # hybrid rank, from 1
    cosine: float        # dense cosine of its best chunk
    coverage: float
    evidence: float
    score: float = 0.0
    quote: str = ""
    result_sentences: list[str] = field(default_factory=list)  # the findings models', verbatim: preferred support
    payload: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def checked_text(self) -> str:
        """What answers are checked against: the text with planted instructions blanked out."""
        return blank_spans(self.text, self.planted) if self.planted else self.text

    def brief(self) -> dict[str, Any]:
        return {"id": self.record_id, "tag": citation_tag(self.record_id), "title": self.title,
                "score": round(self.score, 4), "quote": self.quote, "coverage": round(self.coverage, 3),
                "cosine": round(self.cosine, 3), "published": self.payload.get("published"),
                "record_type": self.payload.get("record_type"), "design": self.payload.get("design"),
                "flags": self.payload.get("flags", [])}


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[dict[str, Any]]
    insufficient_evidence: bool
    closest: list[dict[str, Any]]
    dropped: int
    replaced: int
    model: str
    prompt_id: str
    seconds: float
    # "llm": the model's sentences after enforcement; "extractive": quotes (no model); "llm->extractive":
    # nothing of the model's survived, so quotes; "gate": insufficient evidence, decided before generating.
    mode: str
    support: dict[str, Any] = field(default_factory=dict)
    sentences: list[dict[str, Any]] = field(default_factory=list)
    # For a yes/no question: the position the top record's evidence supports (`synthesis.position`), with the
    # result sentence that carries it; None for other questions or without the models.
    position: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------------
# Retrieval and reranking
# ------------------------------------------------------------------------------------------------

def question_terms(question: str) -> set[str]:
    return content_terms(question) - _QUESTION_WORDS


def evidence_prior(payload: dict[str, Any]) -> float:
    level = payload.get("evidence_level")
    if isinstance(level, int) and level >= 1:
        return max(0.0, 1.0 - (level - 1) / 4)
    return DESIGN_PRIOR.get(payload.get("design") or "", UNKNOWN_PRIOR)


def retrieve(question: str, searcher: Any, catalog: Any, filters: SearchFilter | None = None,
             pool: int = POOL) -> list[Candidate]:
    """The pool of hybrid results as reranked candidates, best first. Records the index has but the
    catalog does not (a stale index) are left out: nothing uncatalogued can be cited."""
    hits: list[RecordHit] = searcher.search(question, filters, limit=pool, mode="hybrid")  # reranked when wired
    if not hits:
        return []
    dense = {h.record_id: h.score for h in searcher.search(question, filters, limit=pool, mode="dense",
                                                            rerank=False)}
    floor = min(dense.values(), default=0.0)
    candidates: list[Candidate] = []
    for hit in hits:
        try:
            record = catalog.get_record(hit.record_id)
        except RecordNotFound:
            log.warning("index holds %s but the catalog does not; left out (run `oncolit index sync`)",
                        hit.record_id)
            continue
        text = record_text(record)  # type: ignore[arg-type]
        planted = find_instructions(text)
        passage = clean_passage(hit.passage, text, planted)
        title = redact(getattr(record, "title", "") or hit.title)  # shown to the model and to the reader
        candidates.append(Candidate(hit.record_id, title, text, planted, passage, hit.rank,
                                    dense.get(hit.record_id, floor), 0.0, evidence_prior(hit.payload),
                                    payload=hit.payload))
    _score(question, candidates)
    candidates.sort(key=lambda c: (-c.score, c.rank))
    return candidates


def _score(question: str, candidates: list[Candidate]) -> None:
    terms = question_terms(question)
    texts = [content_terms(c.checked_text) for c in candidates]
    n = len(candidates)
    idf = {t: math.log((n + 1) / (sum(t in tx for tx in texts) + 0.5)) for t in terms}
    total = sum(idf.values())
    for cand, tx in zip(candidates, texts):
        cand.coverage = sum(w for t, w in idf.items() if t in tx) / total if total > 0 else 0.0
        rank_score = (RRF_K + 1) / (RRF_K + cand.rank)
        cand.score = W_RANK * rank_score + W_COVERAGE * cand.coverage + W_EVIDENCE * cand.evidence


def supports(candidate: Candidate) -> bool:
    """Does this record plausibly bear on the question (the gate's rule for one record)?"""
    return candidate.coverage + candidate.cosine >= MIN_SUPPORT


def sufficient(candidates: Sequence[Candidate]) -> bool:
    """The gate: does the best candidate plausibly answer the question?"""
    return bool(candidates) and supports(candidates[0])


# ------------------------------------------------------------------------------------------------
# Answering
# ------------------------------------------------------------------------------------------------

def answer(question: str, searcher: Any, catalog: Any, llm: LLM | None, *, filters: SearchFilter | None = None,
           limit: int = 8, llm_records: int = LLM_RECORDS, seed: int = 0, max_tokens: int = MAX_TOKENS,
           models: Any = None, answerer: Any = None) -> Answer:
    """Answer `question` from the catalog, citing only retrieved catalog records.

    `llm` None, or a backend that does not generate (backend "none"), gives an extractive answer:
    the best supporting sentence of each of the top records, quoted verbatim with its citation.
    The model sees the best `llm_records` passages; `max_tokens` bounds its reply.
    `models` (the findings models) make each record's quote its result sentence that best matches the question;
    `answerer` (the yes/no/maybe classifier) gives a polar question a position (`Answer.position`).
    """
    started = time.perf_counter()
    question = " ".join(question.split())
    candidates = retrieve(question, searcher, catalog, filters, pool=max(POOL, limit))
    for i, cand in enumerate(candidates[:max(limit, CLOSEST)]):
        evidence = evidence_quote(question, cand, models) if models is not None and i < limit else None
        cand.quote = evidence or best_quote(question, cand.text, skip=cand.planted)
    top = candidates[:limit]
    generating = llm is not None and llm.capabilities.generation
    model = llm.name if generating else EXTRACTIVE  # type: ignore[union-attr]
    prompt_id = ANSWER_V1.id if generating else EXTRACTIVE
    support = {"coverage": round(top[0].coverage, 3) if top else 0.0,
               "cosine": round(top[0].cosine, 3) if top else 0.0,
               "min_support": MIN_SUPPORT, "candidates": len(candidates)}

    def done(text: str, cited: list[str], insufficient: bool, mode: str, dropped: int = 0, replaced: int = 0,
             sentences: list[dict[str, Any]] | None = None) -> Answer:
        by_id = {c.record_id: c for c in candidates}
        citations = [{"id": rid, "tag": citation_tag(rid), "title": by_id[rid].title, "quote": by_id[rid].quote,
                      "score": round(by_id[rid].score, 4), "flags": by_id[rid].payload.get("flags", [])}
                     for rid in cited]
        closest = [c.brief() for c in candidates[:CLOSEST]] if insufficient else []
        return Answer(question, text, citations, insufficient, closest, dropped, replaced, model, prompt_id,
                      round(time.perf_counter() - started, 3), mode, support, sentences or [])

    if not sufficient(top):
        log.info("insufficient evidence for %r: best coverage %.2f, cosine %.2f", question,
                 support["coverage"], support["cosine"])
        return done(INSUFFICIENT_TEXT, [], True, mode="gate")
    position = _position(question, top, models, answerer)

    if not generating:
        text, cited = extractive(question, top)
        result = done(text, cited, False, mode="extractive")
        result.position = position
        return result

    shown = top[:llm_records]
    try:
        sentences, model_says_insufficient = _generate(question, shown, llm, seed=seed,  # type: ignore[arg-type]
                                                       max_tokens=max_tokens)
    except LLMError as exc:
        log.warning("the model failed (%s); answering extractively", exc)
        sentences, model_says_insufficient = [], False
    sources = {c.record_id: c.checked_text for c in shown}
    # A failing sentence becomes a quote only from a record that shares the question's words: a weak
    # model may cite an off-topic record, whose quote would answer nothing.
    quotes = {c.record_id: c.quote for c in shown if c.quote and supports(c)}
    enforced = enforce(sentences, sources, quotes, evidence={c.record_id: c.result_sentences for c in shown
                                                      if c.result_sentences})
    details = [s.as_dict() for s in enforced.sentences]
    if enforced.text.strip() and citation_ids(enforced.text):
        result = done(enforced.text, citation_ids(enforced.text), False, "llm", enforced.dropped, enforced.replaced,
                      details)
        result.position = position
        return result
    if model_says_insufficient and not sentences:
        # A clean "the records do not answer this" (no sentences): the model read them, the gate only
        # counted words. A reply that both answers and says "insufficient" is noise: quotes instead.
        return done(INSUFFICIENT_TEXT, [], True, "llm", 0, 0, details)
    text, cited = extractive(question, top)
    return done(text, cited, False, "llm->extractive", enforced.dropped, enforced.replaced, details)


def evidence_quote(question: str, cand: Candidate, models: Any) -> str | None:
    """The record's result sentence that best matches the question (the findings models' reader), verbatim and
    outside planted passages; None when the record has no result sentence on the question's terms. Every result
    sentence goes to `cand.result_sentences`: the preferred support of a generated sentence citing the record."""
    from synthesis.text import sentences_of

    text = cand.checked_text
    reading = models.read(sentences_of(text))
    terms = question_terms(question)
    best, best_score = None, 0.0
    for r in reading.sentences:
        if r.result_probability < 0.5 or text[r.sentence.start:r.sentence.end] != r.sentence.text or \
                any(s < r.sentence.end and r.sentence.start < e for s, e in cand.planted):
            continue
        cand.result_sentences.append(r.sentence.text)
        shared = content_terms(r.sentence.text) & terms
        if not shared:
            continue
        score = r.result_probability + len(shared) / max(1, len(terms))
        if score > best_score:
            best, best_score = r.sentence.text, score
    return best


def _position(question: str, top: Sequence[Candidate], models: Any, answerer: Any) -> dict[str, Any] | None:
    """The position of the best record's evidence on a yes/no question, with its cited result sentence."""
    from synthesis.position import take_position

    if not top or (models is None and answerer is None):
        return None
    best = top[0]
    found = take_position(question, best.checked_text, answerer=answerer, models=models, record_id=best.record_id)
    if found is None:
        return None
    out = found.as_dict()
    out["tag"] = citation_tag(best.record_id)
    return out


def extractive(question: str, candidates: Sequence[Candidate]) -> tuple[str, list[str]]:
    """The best supporting quote of each top candidate that has one, cited; at most
    `EXTRACTIVE_SENTENCES` distinct quotes, best first, from records that pass the gate's rule
    themselves (`supports`). Records that say the same sentence share it: one sentence, several
    citations. The result goes through `enforce` like generated text: the invariant holds by check,
    not only by construction."""
    terms = question_terms(question)
    quotes: dict[str, list[str]] = {}  # normalised quote -> records citing it, in rank order
    for cand in candidates:
        quote = " ".join(cand.quote.split())
        if not quote or not supports(cand) or (terms and not (content_terms(quote) & terms)):
            continue
        if quote not in quotes and len(quotes) == EXTRACTIVE_SENTENCES:
            continue
        quotes.setdefault(quote, []).append(cand.record_id)
    sentences = [with_citations(q if q.endswith((".", "!", "?")) else q + ".", ids) for q, ids in quotes.items()]
    enforced = enforce(sentences, {c.record_id: c.checked_text for c in candidates})
    return enforced.text, citation_ids(enforced.text)


def _generate(question: str, shown: Sequence[Candidate], llm: LLM, *, seed: int,
              max_tokens: int) -> tuple[list[str], bool]:
    """Ask the model; return its sentences (each with its citations written in) and its
    insufficient flag. Unparseable output yields no sentences."""
    tags = [citation_tag(c.record_id) for c in shown]
    passages = _fit_passages(shown, llm, max_tokens)
    messages = answer_messages(question, [(tag, c.title, p) for tag, c, p in zip(tags, shown, passages)])
    schema = answer_schema(tags)
    completion = llm.complete(messages, max_tokens=max_tokens, temperature=0.0, seed=seed,
                              json_schema=schema if llm.capabilities.json_schema else None)
    data = parse_reply(completion.text, "answer_sentences")
    if data is None:
        # No JSON at all: take the reply as prose with inline citations (enforce checks it the same way).
        return split_sentences(completion.text), False
    return cited_sentences(data, "answer_sentences"), bool(data.get("insufficient"))


def _fit_passages(shown: Sequence[Candidate], llm: LLM, max_tokens: int) -> list[str]:
    """Passages cut to share the model's context: what is left after the prompt and the reply."""
    passages = [c.passage or c.checked_text for c in shown]
    context = llm.capabilities.max_context
    if not context:
        return passages
    overhead = 420 + 40 * len(shown)  # instructions, markers, titles, question
    budget = int((context - max_tokens - overhead) * _CHARS_PER_TOKEN) - sum(len(c.title) for c in shown)
    if budget <= 0:
        raise LLMError(f"the model's context ({context} tokens) is too small to answer from {len(shown)} records")
    per = budget // max(1, len(shown))
    return [p if len(p) <= per else p[:per].rsplit(" ", 1)[0] + " …" for p in passages]
