"""What the record page shows beside the include/exclude buttons: the record's evidence grade with every
reason, and its extracted findings (outcomes with direction, effect sizes and verbatim quotes).

Why here: a librarian deciding on a record should see what search, answers and digests will make of it,
not only its abstract. A page view never calls a language model and never writes: it shows the cached
extraction of the server's model when `oncolit extract` stored one, else the rules (and the findings models,
when the server has already loaded them) run for this page, and it says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from ingest.catalog import Catalog
from ingest.errors import OncoLitError
from ingest.records.article import Article
from ingest.records.trial import Trial
from oncolit.web.deps import app_resources

if TYPE_CHECKING:  # synthesis is imported when a record page is first drawn, not when the app is built
    from synthesis.findings import Findings, Outcome
    from synthesis.findings_models.runtime import FindingsModels
    from synthesis.grading import Grade
    from synthesis.llm.base import LLM


@dataclass(frozen=True)
class OutcomeRow:
    """One outcome as the page lists it: the numbers already written as a reader reads them."""

    name: str
    primary: bool
    direction: str | None
    effect: str  # "HR 0.45 (95% CI 0.33-0.63), p < 0.001", or "" when the record gives no number
    comparison: str  # "trametinib vs chemotherapy", or ""
    quote: str | None


@dataclass(frozen=True)
class RecordEvidence:
    grade: Grade | None
    findings: Findings | None
    outcomes: list[OutcomeRow]
    basis: str  # where the findings came from, in words
    problem: str | None = None  # why there is nothing to show


def _number(value: float | None, unit: str | None = None) -> str:
    from synthesis.rules.numbers import format_value

    if value is None:
        return "not reached"
    text = format_value(value)
    return f"{text}{'' if not unit else ('%' if unit == '%' else ' ' + unit)}"


def effect_text(o: Outcome) -> str:
    """The estimate, its interval and p as one line, or "" when the outcome has no number (a planned one)."""
    from synthesis.rules.numbers import format_value

    parts: list[str] = []
    measure = "" if o.measure in (None, "other") else str(o.measure).replace("_", " ")
    if o.value is not None:
        parts.append(f"{measure} {_number(o.value, o.unit)}".strip())
    elif o.arm_values:
        parts.append(f"{measure} {' vs '.join(_number(v, o.unit) for v in o.arm_values)}".strip())
    if o.ci_low is not None and o.ci_high is not None:
        level = f"{format_value(o.ci_level)}% " if o.ci_level else ""
        parts.append(f"({level}CI {format_value(o.ci_low)}–{format_value(o.ci_high)})")
    text = " ".join(parts)
    if o.p_value is not None:
        text += f"{', ' if text else ''}p {o.p_comparator or '='} {format_value(o.p_value)}"
    return text


def outcome_rows(findings: Findings) -> list[OutcomeRow]:
    rows = []
    for o in sorted(findings.outcomes, key=lambda o: not o.primary):
        comparison = " vs ".join(p for p in (o.intervention, o.comparator) if p)
        rows.append(OutcomeRow(o.name, o.primary, o.direction, effect_text(o), comparison, o.quote))
    return rows


def record_evidence(catalog: Catalog, record_id: str, *, llm: LLM | None = None,
                    models: FindingsModels | None = None) -> RecordEvidence:
    """Grade and findings of `record_id`'s current version. `llm`/`models`: the server's, if it has them loaded;
    only their cached extraction is used (the model is never called from a page)."""
    from synthesis import store
    from synthesis.extract import cache_key, extract
    from synthesis.grading import grade

    info = catalog.get(record_id)
    if not info["version"]:
        return RecordEvidence(None, None, [], "", "This record has no stored version to grade.")
    record = catalog.get_record(record_id)
    if not isinstance(record, (Article, Trial)):
        return RecordEvidence(None, None, [], "", "Only articles and trials are graded.")
    model, prompt_id = cache_key(record, llm, models=models)
    hit = store.get(catalog, record_id, info["version"], model, prompt_id)
    if hit is not None:
        findings, basis = hit.findings, f"the stored extraction ({model}, {prompt_id})"
    else:
        findings = extract(record, None, version=info["version"], models=models).findings
        basis = ("the rules and the findings models, run for this page" if models is not None else
                 "the rules, run for this page (no extraction stored yet: `oncolit extract` stores one)")
    graded = grade(record, findings, retracted=info["retracted"], deleted=info["deleted"])
    return RecordEvidence(graded, findings, outcome_rows(findings), basis)


def for_page(request: Request, catalog: Catalog, record_id: str) -> RecordEvidence:
    """`record_evidence` with the server's LLM and findings models only when it has loaded them (a page never
    loads a model); an error becomes the section's message, not a failed page."""
    res = app_resources(request)
    llm = res.llm if res is not None and res.built("llm") else None
    models = res.findings_models if res is not None and res.built("findings_models") else None
    try:
        return record_evidence(catalog, record_id, llm=llm, models=models)
    except OncoLitError as exc:
        return RecordEvidence(None, None, [], "", str(exc))
