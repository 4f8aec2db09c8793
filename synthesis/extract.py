"""Findings extraction for one record version: rules always, a language model when one is given,
and verification between the two.

    record ──> record text ──> planted instructions blanked ("clean" text, same offsets)
                                  │
                   rules (synthesis.readers) ──────────────┐
                                  │                        ├─> merge ─> Findings (+ dropped)
       LLM (prompt EXTRACT_V1, schema llm_schema()) ─> validate ─> verify ┘

Why this shape:
- Rules run on every record (backend `none`) and read spans, so their values are verbatim by
  construction; they are the base that model output is merged into, never overwritten by it.
- Model output is data to check, not truth: every number must occur in the record text, every
  quote must be a verbatim span, and every free-text value must use the record's own words
  (`synthesis.verify` plus a word check here). What fails is dropped and listed with the reason.
- Verification runs against the *clean* text, in which passages addressed to a model are blanked
  (`prompts.find_instructions`): even a model that obeyed a planted instruction cannot get a word of
  it past the verifier. The model is shown the clean text too, between data markers.
- Trials are read from registry fields alone: they are already structured, so no model is asked.

Cache key of a result: (record version, `model`, `prompt_id`) — see `cache_key`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ingest.records.article import Article
from ingest.records.trial import Trial
from synthesis import readers
from synthesis.findings import (
    DroppedField,
    ExtractionInfo,
    Findings,
    LLMFindings,
    LLMOutcome,
    Outcome,
    Population,
    Provenance,
    Quote,
    Source,
    llm_schema,
)
from synthesis.findings_models.merge import arms_with_sizes, model_fields
from synthesis.findings_models.runtime import FindingsModels
from synthesis.llm.base import LLM, GenerationRefused, LLMError
from synthesis.prompts import EXTRACT_V1, Prompt, blank_spans, find_instructions
from synthesis.rules.numbers import format_value
from synthesis.verify import find_quote, source_numbers, verify_numbers

RULES_ID = "findings-rules/v1"
"""Prompt id of rules-only results (backend none). Bump when the readers change what they produce."""
TRIAL_ID = "trial-registry/v1"
"""Prompt id of trial results, which come from registry fields whatever the model."""
NO_MODEL = "none"
REGISTRY = "registry"
MODELS_ID = "findings-models/v1"
"""Joins the prompt id when the findings models ran. Bump when their merge step changes what it produces."""

DEFAULT_MAX_TOKENS = 640
"""Qwen2.5-1.5B fills the LLM schema in 250-350 tokens; filled to every bound it would take about 600.
An answer cut off anyway keeps its complete fields (`salvage`)."""
_CHARS_PER_TOKEN = 3.0  # conservative for English abstracts (about 4), so the prompt always fits
_MIN_QUOTE = 12


@dataclass
class ExtractionResult:
    """What one extraction produced. `findings.dropped` repeats `dropped` so the object stands alone."""

    findings: Findings
    dropped: list[DroppedField]
    backend: str
    model: str
    prompt_id: str
    seconds: float
    cached: bool = False
    llm_seconds: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)


def backend_of(llm: LLM | None) -> str:
    """The backend name for results: "none" without a generating model, else the name's prefix."""
    if llm is None or not llm.capabilities.generation:
        return NO_MODEL
    return llm.name.split(":", 1)[0]


def cache_key(record: Article | Trial, llm: LLM | None, prompt: Prompt = EXTRACT_V1,
              models: FindingsModels | None = None) -> tuple[str, str]:
    """(model, prompt id) a result for `record` is cached under, given the models in use."""
    if isinstance(record, Trial):
        return REGISTRY, TRIAL_ID
    return article_cache_key(llm, prompt, models)


def article_cache_key(llm: LLM | None, prompt: Prompt = EXTRACT_V1,
                      models: FindingsModels | None = None) -> tuple[str, str]:
    """(model, prompt id) of an article's result: ("none", RULES_ID) with neither a generating model nor the
    findings models; the findings models' names join both parts when they run."""
    suffix = f"+{models.name}" if models is not None else ""
    if llm is None or not llm.capabilities.generation:
        return NO_MODEL + suffix, RULES_ID + (f"+{MODELS_ID}" if models is not None else "")
    return llm.name + suffix, prompt.id + (f"+{MODELS_ID}" if models is not None else "")


def extract(record: Article | Trial, llm: LLM | None = None, *, version: int | None = None,
            max_tokens: int = DEFAULT_MAX_TOKENS, seed: int = 0, prompt: Prompt = EXTRACT_V1,
            models: FindingsModels | None = None) -> ExtractionResult:
    """Findings for one record version. `llm` None (or the `none` backend) means no language model; `models`
    (the fine-tuned findings models) add one outcome per reported comparison with its direction."""
    started = time.perf_counter()
    model, prompt_id = cache_key(record, llm, prompt, models)
    if isinstance(record, Trial):
        findings = _trial_findings(record, version)
        return ExtractionResult(findings, [], REGISTRY, model, prompt_id, time.perf_counter() - started)
    backend = backend_of(llm)
    text = readers.record_text(record)
    planted = find_instructions(text)
    clean = blank_spans(text, planted)
    base, quotes, provenance = _article_rules(record, clean, planted)
    if models is not None:
        _apply_models(models, record, clean, base, quotes, provenance)
    dropped: list[DroppedField] = []
    warnings: list[str] = []
    if planted:
        warnings.append(f"the record contains {len(planted)} passage(s) addressed to a language model "
                        f"(characters {', '.join(f'{s}-{e}' for s, e in planted)}); they were treated as "
                        "data and ignored")
    llm_seconds, tokens = 0.0, {}
    if llm is not None and llm.capabilities.generation:
        try:
            answer, llm_seconds, tokens, note = _ask(llm, record, clean, max_tokens, seed, prompt)
        except GenerationRefused:
            answer, note = None, None
            backend, model, prompt_id = NO_MODEL, NO_MODEL, RULES_ID
        except LLMError as exc:
            answer, note = None, None
            dropped.append(DroppedField(path="$", reason=_short(f"the model failed: {exc}")))
        if note:
            warnings.append(note)
        if answer is not None:
            verified, more = _check(answer, clean)
            dropped += more
            _merge(base, quotes, provenance, verified, clean)
    findings = Findings(
        record_id=record.record_id, version=version, record_kind="article", **base,
        quotes=quotes[:120], provenance=provenance, warnings=warnings, dropped=dropped[:400],
        extraction=ExtractionInfo(backend=backend, model=model, prompt_id=prompt_id))
    return ExtractionResult(findings, dropped, backend, model, prompt_id, time.perf_counter() - started,
                            llm_seconds=llm_seconds, tokens=tokens)


# ------------------------------------------------------------------------------------------------
# Rules
# ------------------------------------------------------------------------------------------------

def _quote(field_name: str, text: str, span: tuple[int, int]) -> Quote:
    return Quote(field=field_name, text=text[span[0]:span[1]][:3000], start=span[0], end=span[1])


def _article_rules(article: Article, clean: str,
                   planted: list[tuple[int, int]]) -> tuple[dict[str, Any], list[Quote], dict[str, Provenance]]:
    """Every field the readers get from the clean text, the quotes behind them, and their sources."""
    title_end = len(article.title)
    decision = readers.decide_design(article, clean)
    provenance: dict[str, Provenance] = {}
    quotes: list[Quote] = [_quote("design", clean, c.span) for c in decision.cues if c.span][:5]
    base: dict[str, Any] = {"design": decision.label, "phase": decision.phase,
                            "randomised": decision.randomised, "blinding": decision.blinding}
    provenance["design"] = decision.source
    for key in ("phase", "randomised", "blinding"):
        if base[key] is not None:
            provenance[key] = _cue_source(decision.cues, key)
    for key, (value, span) in readers.counts(clean).items():
        base[key] = value
        provenance[key] = "rules"
        quotes.append(_quote(key, clean, span))
    population, population_quotes = readers.population(clean, title_end)
    base["population"] = population
    quotes += population_quotes
    if population.model_dump(exclude_defaults=True):
        provenance["population"] = "rules"
    interventions, comparator, arm_quotes = readers.arms(clean, title_end)
    if interventions:
        base["interventions"], base["comparator"] = interventions, comparator
        provenance["interventions"] = provenance["comparator"] = "rules"
        quotes += arm_quotes
    outcomes: list[Outcome] = []
    for outcome, span in readers.effect_outcomes(clean):
        quotes.append(_quote(f"outcomes[{len(outcomes)}]", clean, span))
        outcomes.append(outcome)
    _mark_primary(outcomes, quotes, clean)
    base["outcomes"] = outcomes[:60]
    if outcomes:
        provenance["outcomes"] = "rules"
    span = readers.conclusion(article, clean)
    span = readers.clip(span, planted) if span else None
    span = readers.trim(clean, span) if span else None
    if span:
        base["conclusion"] = clean[span[0]:span[1]].strip()[:3000]
        provenance["conclusion"] = "rules"
        quotes.append(_quote("conclusion", clean, span))
    stop = readers.stopped_early(clean)
    if stop:
        base["stopped_early"] = True
        provenance["stopped_early"] = "rules"
        quotes.append(_quote("stopped_early", clean, stop))
    base["registrations"] = readers.registrations(article, clean)
    if base["registrations"]:
        provenance["registrations"] = "rules"
    return base, quotes, provenance


def prefetch(models: FindingsModels | None, records: Iterable[Article | Trial]) -> None:
    """Read many articles' sentences in shared batches before extracting them one by one (a backfill's batch):
    `extract()` then finds each reading ready. Reads the same clean text `extract()` does."""
    if models is None:
        return
    from synthesis.text import article_sentences

    texts, arms = [], []
    for record in records:
        if isinstance(record, Article):
            text = readers.record_text(record)
            clean = blank_spans(text, find_instructions(text))
            texts.append(article_sentences(record, clean))
            arms.append(_rule_arms(clean, record))
    if texts:
        models.read_many(texts, arms)


def _rule_arms(clean: str, article: Article) -> tuple[str | None, str | None]:
    interventions, comparator, _ = readers.arms(clean, len(article.title))
    return (interventions[0] if interventions else None), comparator


def _apply_models(models: FindingsModels, article: Article, clean: str, base: dict[str, Any], quotes: list[Quote],
                  provenance: dict[str, Provenance]) -> None:
    """One outcome per comparison the models found (numbers from the rules in the same sentence), the models'
    interventions and comparator where they found them, and arm sizes. Rule outcomes in sentences the models
    did not pick stay as they were; quotes are renumbered to the new outcome order."""
    reading = models.read_article(article, clean, _rule_arms(clean, article))
    rule_outcomes = [(o, (q.start, q.end)) for o, q in zip(base["outcomes"], _outcome_quotes(quotes))
                     if q is not None and q.start is not None and q.end is not None]
    primary = readers.primary_outcome(clean)
    fields = model_fields(reading, clean, rule_outcomes, primary[1] if primary else None)
    arm_i, arm_c = _rule_arms(clean, article)
    arm_i, arm_c = (fields.interventions[0] if fields.interventions else arm_i), (fields.comparator or arm_c)
    fields.outcomes = [(o.model_copy(update={"intervention": o.intervention or arm_i,
                                             "comparator": o.comparator or arm_c}), span)
                       for o, span in fields.outcomes]
    if fields.interventions:
        base["interventions"] = fields.interventions
        provenance["interventions"] = "model"
        if fields.comparator:
            base["comparator"] = fields.comparator
            provenance["comparator"] = "model"
    kept_rules = [pair for i, pair in enumerate(rule_outcomes) if i not in fields.consumed_rules]
    primary_rules = [o for o in base["outcomes"] if o.primary and o.value is None and o.quote and
                     not any(o is r for r, _ in rule_outcomes)]
    merged = sorted(fields.outcomes + kept_rules, key=lambda pair: pair[1][0])
    if any(o.primary for o, _ in merged):
        primary_rules = []
    quotes[:] = [q for q in quotes if not q.field.startswith("outcomes[")]
    outcomes: list[Outcome] = []
    for outcome, span in merged[:60]:
        quotes.append(Quote(field=f"outcomes[{len(outcomes)}]", text=clean[span[0]:span[1]][:3000], start=span[0],
                            end=span[1]))
        outcomes.append(outcome)
    for outcome in primary_rules[:1]:
        outcomes.append(outcome)
    base["outcomes"] = outcomes
    if fields.outcomes:
        provenance["outcomes"] = "rules+model" if kept_rules or any(
            o.source == "rules+model" for o, _ in fields.outcomes) else "model"
    arms = arms_with_sizes(clean, base.get("interventions") or [], base.get("comparator"))
    if arms:
        base["arms"] = [a for a, _ in arms]
        provenance["arms"] = "rules"
        quotes += [q for _, q in arms]


def _outcome_quotes(quotes: list[Quote]) -> list[Quote | None]:
    """The quote of each rule outcome, by its index in the `outcomes[i]` field name."""
    by_index: dict[int, Quote] = {}
    for q in quotes:
        m = re.fullmatch(r"outcomes\[(\d+)\]", q.field)
        if m:
            by_index.setdefault(int(m.group(1)), q)
    return [by_index.get(i) for i in range(max(by_index, default=-1) + 1)]


def _cue_source(cues: Iterable[Any], aspect: str) -> Source:
    aspect = {"randomised": "randomised", "phase": "phase", "blinding": "blinding"}[aspect]
    for cue in cues:
        if cue.aspect == aspect:
            return {"publication_type": "publication_type", "mesh": "mesh"}.get(cue.source, "rules")  # type: ignore[return-value]
    return "rules"


def _mark_primary(outcomes: list[Outcome], quotes: list[Quote], text: str) -> None:
    """Flag outcomes of the kind the record calls primary; add a value-less one if none was read."""
    primary = readers.primary_outcome(text)
    if primary is None:
        return
    kind, name, span = primary
    matched = False
    for i, outcome in enumerate(outcomes):
        if kind != "other" and outcome.kind == kind:
            outcomes[i] = outcome.model_copy(update={"primary": True})
            matched = True
    if not matched:
        quotes.append(_quote(f"outcomes[{len(outcomes)}]", text, span))
        outcomes.append(Outcome(name=name, kind=kind, primary=True, quote=text[span[0]:span[1]][:1000],
                                source="rules"))


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------

def _fit(text: str, budget_chars: int) -> tuple[str, str | None]:
    """`text` cut at a sentence end to fit the model's context, and a warning when cut."""
    if len(text) <= budget_chars:
        return text, None
    cut = max(text.rfind(". ", 0, budget_chars), text.rfind("\n", 0, budget_chars))
    cut = cut + 1 if cut > budget_chars // 2 else budget_chars
    return text[:cut], f"the record text was shortened to {cut} of {len(text)} characters for the model's context"


def _ask(llm: LLM, article: Article, clean: str, max_tokens: int, seed: int,
         prompt: Prompt) -> tuple[Any, float, dict[str, int], str | None]:
    """One constrained generation; the parsed JSON (or None), seconds, token counts and a note."""
    title_end = len(article.title)
    title, body = clean[:title_end], clean[title_end + 1:] if article.title else clean
    body = re.sub(r"[ \t]{2,}", " ", body)  # blanked passages leave runs of spaces
    empty = prompt.messages(title="", text="")
    overhead = sum(len(m["content"]) for m in empty) / _CHARS_PER_TOKEN + 16
    note = None
    if llm.capabilities.max_context:
        budget = int((llm.capabilities.max_context - max_tokens - overhead) * _CHARS_PER_TOKEN) - len(title)
        if budget < 200:
            raise LLMError(f"the model's context ({llm.capabilities.max_context} tokens) is too small for "
                           f"max_tokens={max_tokens} plus the prompt")
        body, note = _fit(body, budget)
    completion = llm.complete(prompt.messages(title=title.strip(), text=body), max_tokens=max_tokens,
                              temperature=0.0, seed=seed, json_schema=llm_schema())
    tokens = {"in": completion.tokens_in, "out": completion.tokens_out}
    try:
        answer = completion.json()
    except LLMError:
        answer = salvage(completion.text)
        cut = f" (cut off at max_tokens={max_tokens})" if completion.tokens_out >= max_tokens else ""
        if answer is None:
            raise LLMError(f"its output was not valid JSON{cut}") from None
        note = (f"the model's output was not complete JSON{cut}; the {len(answer)} complete top-level "
                "fields before the break were kept and checked")
    return answer, completion.seconds, tokens, note


def salvage(text: str) -> dict[str, Any] | None:
    """The complete part of a JSON object cut off mid-way (a generation that hit max_tokens).

    Walks the text once, noting at each comma outside strings which brackets are open; the latest
    prefix that parses once those brackets are closed wins. Members after the break are lost; an
    item cut inside keeps the members it completed.
    """
    stack: list[str] = []
    cuts: list[tuple[int, str]] = []
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]":
            if not stack:
                return None
            stack.pop()
        elif char == "," and stack:
            cuts.append((i, "".join(reversed(stack))))
    for position, closers in reversed(cuts[-64:]):
        try:
            value = json.loads(text[:position] + closers)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


_COUNT_WORDS = {"n_randomised": r"randomi[sz]|randomly|assigned|allocated",
                "n_analysed": r"analy[sz]|evaluable|assessable|included\s+in\s+the"}
_PEOPLE = (r"(?:patients|participants|subjects|women|men|children|adults|cases|individuals|persons|people"
           r"|volunteers|survivors)\b")

# Words that carry no content: a value made only of these says nothing about the record.
_STOPWORDS = frozenset("""
    the and for with from that this was were are has have had not but its their our into than then also
    who which whose all any per via vs versus
""".split())
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _grounded(value: str, record_words: set[str], record_lower: str) -> bool:
    """Whether a free-text value is made of the record's own words (a plural "s" aside)."""
    content = [w for w in _WORD.findall(value.lower()) if len(w) >= 3 and w not in _STOPWORDS]
    if not content:
        return bool(value.strip()) and value.strip().lower() in record_lower
    return all(w in record_words or w.rstrip("s") in record_words or f"{w}s" in record_words for w in content)


class _Checker:
    """Verifies one model answer against the clean record text, noting every removal."""

    def __init__(self, clean: str):
        self.clean = clean
        self.numbers = source_numbers(clean)
        self.words = _words(clean)
        self.lower = clean.lower()
        self.dropped: list[DroppedField] = []

    def drop(self, path: str, reason: str) -> None:
        self.dropped.append(DroppedField(path=path[:200], reason=_short(reason), source="llm"))

    def number(self, path: str, value: Any) -> Any:
        """A JSON number the text contains (an unsigned one may stand for a signed one, as in verify)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            self.drop(path, "not a number")
            return None
        written = format_value(value)
        if written in self.numbers or (not written.startswith("-") and f"-{written}" in self.numbers):
            return value
        self.drop(path, "the number does not occur in the record text")  # the value is never repeated
        return None

    def head_count(self, path: str, value: Any, kind_words: str) -> Any:
        """A number of participants: in the text, written as one ("322 patients", "n = 322"), with a
        word saying which count it is (randomised / analysed) within the same stretch of text."""
        value = self.number(path, value)
        if value is None:
            return None
        written = rf"(?:{value}|{value:,})" if isinstance(value, int) else re.escape(format_value(value))
        pattern = (rf"(?<![\d.,]){written}\s+(?:[\w\-]+\s+){{0,3}}?{_PEOPLE}|\b[nN]\s*=\s*{written}(?![\d.,])")
        for match in re.finditer(pattern, self.clean, re.IGNORECASE):
            window = self.clean[max(0, match.start() - 80):match.end() + 80]
            if re.search(kind_words, window, re.IGNORECASE):
                return value
        self.drop(path, "the number is not stated as this count of participants")
        return None

    def phrase(self, path: str, value: str | None) -> str | None:
        """A free-text value: every number in it in the text, and made of the record's words."""
        if value is None or not value.strip():
            return None
        ok, missing = verify_numbers(value, self.numbers)
        if not ok:
            self.drop(path, f"{len(missing)} number(s) not in the record text")
            return None
        if not _grounded(value, self.words, self.lower):
            self.drop(path, "uses words that do not occur in the record text")
            return None
        return value.strip()

    def quote(self, path: str, value: str | None) -> tuple[str, tuple[int, int]] | None:
        if value is None or not value.strip():
            return None
        if len(value.strip()) < _MIN_QUOTE or len(_WORD.findall(value)) < 2:
            self.drop(path, f"quote too short to support anything (under {_MIN_QUOTE} characters or 2 words)")
            return None
        span = find_quote(value, self.clean) or find_quote(value.strip()[:1].swapcase() + value.strip()[1:],
                                                          self.clean)
        if span is None:
            self.drop(path, "quote is not a verbatim span of the record text")
            return None
        return self.clean[span[0]:span[1]], span


def _validated(raw: Any, checker: _Checker) -> tuple[LLMFindings, list[tuple[int, LLMOutcome]]]:
    """The answer as `LLMFindings`, key by key and outcome by outcome, so one bad value costs only
    itself. Outcomes keep their index in the model's answer for the drop paths."""
    if not isinstance(raw, dict):
        checker.drop("$", "the model's answer is not a JSON object")
        return LLMFindings(), []
    kept: dict[str, Any] = {}
    outcomes: list[tuple[int, LLMOutcome]] = []
    for key, value in raw.items():
        if key not in LLMFindings.model_fields:
            checker.drop("$", "an unknown key (not a field of the extraction schema); its name is not repeated")
        elif key == "outcomes":
            items = value if isinstance(value, list) else []
            if not isinstance(value, list):
                checker.drop("outcomes", "not a list")
            for i, item in enumerate(items):
                if i >= 3:
                    checker.drop(f"outcomes[{i}]", "more outcomes than the schema allows")
                    continue
                try:
                    outcomes.append((i, LLMOutcome.model_validate(item)))
                except ValidationError as exc:
                    checker.drop(f"outcomes[{i}]", "invalid: " + _first_error(exc, skip=0))
        elif key in ("biomarkers", "interventions") and isinstance(value, list):
            kept[key] = []
            for i, item in enumerate(value):
                try:
                    kept[key] += getattr(LLMFindings.model_validate({key: kept[key] + [item]}), key)[-1:]
                except ValidationError as exc:
                    checker.drop(f"{key}[{i}]", "invalid: " + _first_error(exc))
        else:
            try:
                kept[key] = getattr(LLMFindings.model_validate({key: value}), key)
            except ValidationError as exc:
                checker.drop(key, "invalid: " + _first_error(exc))
    return LLMFindings.model_validate(kept), outcomes


def _first_error(exc: ValidationError, skip: int = 1) -> str:
    """The first problem, located below the field already named in the drop path (`skip` parts)."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"][skip:])
    return f"{where}: {error['msg']}" if where else error["msg"]


@dataclass
class _Verified:
    population: dict[str, Any]
    interventions: list[str]
    comparator: str | None
    counts: dict[str, int]
    outcomes: list[tuple[Outcome, tuple[int, int]]]
    conclusion: tuple[str, tuple[int, int]] | None


def _check(raw: Any, clean: str) -> tuple[_Verified, list[DroppedField]]:
    """Validate and verify a model answer; what survives and what was dropped (with why)."""
    checker = _Checker(clean)
    answer, outcomes = _validated(raw, checker)
    population: dict[str, Any] = {"cancer_type": checker.phrase("cancer_type", answer.cancer_type)}
    population["biomarkers"] = [b for i, m in enumerate(answer.biomarkers)
                                if (b := checker.phrase(f"biomarkers[{i}]", m))]
    comparator = checker.phrase("comparator", answer.comparator)
    interventions = [v for i, m in enumerate(answer.interventions) if (v := checker.phrase(f"interventions[{i}]", m))
                     and v.lower() != (comparator or "").lower()]
    counts = {key: v for key in ("n_randomised", "n_analysed")
              if (v := checker.head_count(key, getattr(answer, key), _COUNT_WORDS[key])) is not None}
    verified = [o for i, item in outcomes if (o := _check_outcome(checker, f"outcomes[{i}]", item))]
    conclusion = checker.quote("conclusion", answer.conclusion)
    return _Verified(population, interventions, comparator, counts, verified, conclusion), checker.dropped


def _check_outcome(checker: _Checker, path: str, item: LLMOutcome) -> tuple[Outcome, tuple[int, int]] | None:
    """One model outcome. It needs a verbatim quote, and its numbers must occur in the text *and* in
    that quote, so each number is tied to the result it belongs to; the CI must enclose the value
    and p must be a probability. What fails goes; an outcome without a quote goes whole."""
    quoted = checker.quote(f"{path}.quote", item.quote)
    if quoted is None:
        checker.drop(path, "no verbatim quote to tie the outcome's numbers to")
        return None
    quote_numbers = source_numbers(quoted[0])
    values: dict[str, Any] = {}
    for key in ("value", "ci_low", "ci_high", "p_value"):
        value = checker.number(f"{path}.{key}", getattr(item, key))
        if value is not None and format_value(value) not in quote_numbers and \
                f"-{format_value(value)}" not in quote_numbers:
            checker.drop(f"{path}.{key}", f"number {format_value(value)} is not in the outcome's quote")
            value = None
        values[key] = value
    low, high, value = values["ci_low"], values["ci_high"], values["value"]
    if (low is None) != (high is None) or (low is not None and (
            low >= high or (value is not None and not low <= value <= high))):
        if low is not None or high is not None:
            checker.drop(f"{path}.ci_low", "confidence interval incomplete or does not enclose the estimate")
        values["ci_low"] = values["ci_high"] = None
    if values["p_value"] is not None and not 0 <= values["p_value"] <= 1:
        checker.drop(f"{path}.p_value", "not a probability")
        values["p_value"] = None
    name = checker.phrase(f"{path}.name", item.name) or quoted[0][:80]
    named = readers.kind_of_name(name)
    kind = named if named != "other" else item.kind  # the verified name is better evidence than the enum
    outcome = Outcome(name=name[:200], kind=kind, measure=item.measure, **values, direction=item.direction,
                      quote=quoted[0][:1000], source="llm")
    return outcome, quoted[1]


# ------------------------------------------------------------------------------------------------
# Merging
# ------------------------------------------------------------------------------------------------

def _merge(base: dict[str, Any], quotes: list[Quote], provenance: dict[str, Provenance], llm: _Verified,
           clean: str) -> None:
    """Fill what rules left empty with verified model values; rules are never overwritten, except
    that biomarker lists are united. Model outcomes that repeat a rule outcome are not added."""
    population: Population = base["population"]
    updates: dict[str, Any] = {}
    if population.cancer_type is None and llm.population.get("cancer_type"):
        updates["cancer_type"] = llm.population["cancer_type"]
        provenance["population.cancer_type"] = "llm"
    markers = list(population.biomarkers)
    for marker in llm.population["biomarkers"]:
        if marker.lower() not in {m.lower() for m in markers} and len(markers) < 10:
            markers.append(marker)
            provenance["population.biomarkers"] = "rules+llm" if population.biomarkers else "llm"
    updates["biomarkers"] = markers
    base["population"] = population.model_copy(update=updates)
    if not base.get("interventions") and llm.interventions:
        base["interventions"] = llm.interventions
        provenance["interventions"] = "llm"
        if llm.comparator:
            base["comparator"] = llm.comparator
            provenance["comparator"] = "llm"
    for key, value in llm.counts.items():
        if base.get(key) is None:
            base[key] = value
            provenance[key] = "llm"
    outcomes: list[Outcome] = base["outcomes"]
    rule_spans = [(q.start, q.end) for q in quotes if q.field.startswith("outcomes[") and q.start is not None]
    for outcome, span in llm.outcomes:
        if _fills(outcome, outcomes):
            provenance["outcomes"] = "rules+llm"
            continue
        if _repeats(outcome, span, outcomes, rule_spans) or len(outcomes) >= 60:
            continue
        quotes.append(Quote(field=f"outcomes[{len(outcomes)}]", text=clean[span[0]:span[1]][:3000],
                            start=span[0], end=span[1]))
        outcomes.append(outcome)
        provenance["outcomes"] = "rules+llm" if provenance.get("outcomes") in ("rules", "rules+llm") else "llm"
    if base.get("conclusion") is None and llm.conclusion:
        text, span = llm.conclusion
        base["conclusion"] = text[:3000]
        provenance["conclusion"] = "llm"
        quotes.append(Quote(field="conclusion", text=text[:3000], start=span[0], end=span[1]))


def _fills(outcome: Outcome, outcomes: list[Outcome]) -> bool:
    """Complete a rule outcome with the same estimate from the model's verified CI and p-value
    (rules miss some layouts, e.g. "95% confidence interval [CI], 0.33 to 0.63"). True if it did."""
    if outcome.value is None:
        return False
    for i, known in enumerate(outcomes):
        if known.source != "rules" or known.value != outcome.value or known.measure != outcome.measure:
            continue
        update: dict[str, Any] = {}
        if known.ci_low is None and outcome.ci_low is not None and outcome.ci_high is not None:
            update.update(ci_low=outcome.ci_low, ci_high=outcome.ci_high)
        if known.p_value is None and outcome.p_value is not None:
            update["p_value"] = outcome.p_value
        if update:
            if known.direction is None and outcome.direction is not None:
                update["direction"] = outcome.direction
            outcomes[i] = known.model_copy(update={**update, "source": "rules+llm"})
            return True
    return False


def _repeats(outcome: Outcome, span: tuple[int, int], outcomes: list[Outcome],
             rule_spans: list[tuple[int | None, int | None]]) -> bool:
    """Whether a model outcome says what an outcome already kept says (same estimate, or a quote
    overlapping a rule-read one)."""
    if outcome.value is not None and any(o.value == outcome.value and o.measure == outcome.measure for o in outcomes):
        return True
    return any(s is not None and e is not None and s < span[1] and span[0] < e for s, e in rule_spans)


# ------------------------------------------------------------------------------------------------
# Trials
# ------------------------------------------------------------------------------------------------

_STOPPED_STATUSES = frozenset({"TERMINATED", "SUSPENDED"})
_RUNNING_OR_DONE = frozenset({"COMPLETED", "RECRUITING", "ACTIVE_NOT_RECRUITING", "ENROLLING_BY_INVITATION",
                              "NOT_YET_RECRUITING"})


def _trial_findings(trial: Trial, version: int | None) -> Findings:
    """Findings from registry fields: design, arms, planned outcomes, enrolment and status."""
    decision = readers.trial_design(trial)
    arms = readers.trial_arms(trial)
    status = trial.overall_status
    stopped = True if status in _STOPPED_STATUSES else False if status in _RUNNING_OR_DONE else None
    outcomes = readers.trial_outcomes(trial)
    population = readers.trial_population(trial)
    fields: dict[str, Any] = dict(
        design=decision.label, phase=decision.phase, randomised=decision.randomised, blinding=decision.blinding,
        n_enrolled=trial.design.enrollment_count, population=population, interventions=arms.interventions,
        comparator=arms.comparator, outcomes=outcomes, status=status[:40] if status else None,
        stopped_early=stopped, why_stopped=trial.why_stopped[:500] if trial.why_stopped else None,
        registrations=[trial.nct_id])
    provenance: dict[str, Provenance] = {key: "registry" for key, value in fields.items()
                                     if value not in (None, [], Population())}
    return Findings(record_id=trial.record_id, version=version, record_kind="trial", **fields,
                    provenance=provenance, extraction=ExtractionInfo(backend=REGISTRY, model=REGISTRY,
                                                                     prompt_id=TRIAL_ID))


def as_json(model: BaseModel) -> dict[str, Any]:
    """A findings (or grade) object as plain JSON, unset optional values left out for brevity."""
    return model.model_dump(mode="json", exclude_none=True)
