"""The findings schema: what extraction produces for one record version, as pydantic models.

Two schemas live here, on purpose:

- `Findings` is the *published* schema (`schema()`, committed as `synthesis/schemas/findings.schema.json`):
  everything OncoLit knows about a record's study — design, population, arms, outcomes with their
  estimates, the authors' conclusion, supporting quotes — with where each field came from and what
  verification dropped. Downstream code (grading, digests, the index payload, outside checkers)
  reads only this.
- `LLMFindings` is the much smaller object a language model is asked to fill (`llm_schema()`). Small
  models do better with few fields, and the fields rules already read exactly (design, phase,
  blinding, publication metadata) are never asked of a model. `synthesis.extract` verifies the
  model's answer and merges it into a `Findings`.

Every string has a `max_length` (JSON `maxLength`) and every list a `max_length` (JSON `maxItems`):
llama.cpp compiles the LLM schema into a grammar, and bounds keep that grammar, and the output,
finite. Regenerate the committed file with `python -m synthesis.findings` after changing a model
here (a test fails until you do).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from synthesis.rules.design import DesignLabel

SCHEMA_VERSION = "1"
SCHEMA_ID = "https://oncolit.org/schemas/findings/v1.json"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "findings.schema.json"

OutcomeKind = Literal["OS", "PFS", "DFS", "EFS", "ORR", "pCR", "toxicity_grade_3plus", "QoL", "other"]
OUTCOME_KINDS: tuple[str, ...] = get_args(OutcomeKind)
EffectMeasure = Literal["HR", "OR", "RR", "median", "median_difference", "mean_difference",
                        "risk_difference", "rate", "other"]
Direction = Literal["increased", "decreased", "no significant difference"]
"""Against the null (1 for ratios, 0 for differences) or the first arm against the second, as in
`synthesis.rules.effects.direction_of`; evidence-inference uses the same three labels."""
PComparator = Literal["<", "=", "≤", ">", "≥"]
Blinding = Literal["open_label", "single_blind", "double_blind", "triple_blind"]
Source = Literal["rules", "llm", "registry", "publication_type", "mesh", "classifier", "model"]
Provenance = Literal["rules", "llm", "rules+llm", "registry", "publication_type", "mesh", "classifier", "model",
                     "rules+model"]
"""`model`: the fine-tuned findings models (synthesis.findings_models); `rules+model`: a comparison the models
found whose numbers the rule readers read from the same sentence."""

Short = Annotated[str, StringConstraints(max_length=80)]
Phrase = Annotated[str, StringConstraints(max_length=200)]


class _Model(BaseModel):
    """Unknown keys are errors, so a typo in a producer cannot slip past the published schema."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------------
# The published schema
# ------------------------------------------------------------------------------------------------

class Outcome(_Model):
    """One reported result (or, for a registration, one planned outcome without values)."""

    name: str = Field(max_length=200, description="The outcome as the record names it.")
    kind: OutcomeKind = Field("other", description="Outcome family; toxicity_grade_3plus = grade >=3 adverse events.")
    measure: EffectMeasure | None = Field(None, description="Effect measure of `value` / `arm_values`.")
    value: float | None = Field(None, description="The single estimate (a ratio, a difference, one rate).")
    arm_values: list[float | None] = Field(
        default_factory=list, max_length=4,
        description="Per-arm values in text order for arm-by-arm results ('4.8 vs 1.5 months'); null = not reached.")
    unit: str | None = Field(None, max_length=20, description="'months', '%', ...")
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float | None = Field(None, description="Confidence level in percent when stated (95).")
    p_value: float | None = None
    p_comparator: PComparator | None = None
    direction: Direction | None = Field(
        None, description="rules: the estimate against its null (a hazard ratio below 1 is 'decreased'); model: how "
                          "the named outcome went in the intervention arm against the comparator, as Evidence "
                          "Inference labels it (longer survival is 'increased').")
    confidence: float | None = Field(None, ge=0, le=1, description="The direction model's calibrated probability "
                                                                   "of `direction`.")
    intervention: str | None = Field(None, max_length=200, description="What this comparison tests (verbatim).")
    comparator: str | None = Field(None, max_length=200, description="What it is compared with (verbatim).")
    primary: bool = Field(False, description="The record calls this the primary end point / outcome.")
    quote: str | None = Field(None, max_length=1000, description="Verbatim span of the record that reports it.")
    quote_start: int | None = Field(None, ge=0, description="Offset of `quote` in the record text.")
    quote_end: int | None = Field(None, ge=0)
    result_probability: float | None = Field(None, ge=0, le=1, description="The reader model's probability that "
                                                                           "the quote is a result sentence.")
    source: Provenance = Field("rules", description="rules+llm: read by rules, CI or p-value added from the "
                                                    "verified model answer; rules+model: found by the findings "
                                                    "models, numbers read by rules from the same sentence.")


class Arm(_Model):
    """One arm of a trial and its size, when the text gives it ("n = 120")."""

    name: str = Field(max_length=200)
    n: int | None = Field(None, ge=0)
    quote: str | None = Field(None, max_length=1000)
    source: Provenance = "rules"


class Population(_Model):
    cancer_type: str | None = Field(None, max_length=200)
    stage_setting: str | None = Field(None, max_length=200, description="Stage or setting: metastatic, adjuvant, ...")
    biomarkers: list[Short] = Field(default_factory=list, max_length=10)
    line_of_therapy: str | None = Field(None, max_length=100)


class Quote(_Model):
    """A verbatim passage and the finding it supports; offsets index the record text
    (`synthesis.extract.record_text`: title, newline, abstract as a reader sees it)."""

    field: str = Field(max_length=80, description="The finding it supports: 'conclusion', 'outcomes[2]', ...")
    text: str = Field(max_length=3000)
    start: int | None = Field(None, ge=0)
    end: int | None = Field(None, ge=0)


class DroppedField(_Model):
    """A value that failed verification and was removed. The value itself is not repeated: it is
    unsupported by the record, possibly planted in it, and must not reach any output."""

    path: str = Field(max_length=200, description="Where it was in the producer's output: 'outcomes[1].ci_low'.")
    reason: str = Field(max_length=300)
    source: Source = "llm"


class ExtractionInfo(_Model):
    backend: str = Field(max_length=40, description="none | llamacpp | openai | transformers | registry")
    model: str = Field(max_length=200, description="Model name as the cache keys it ('none' for rules only).")
    prompt_id: str = Field(max_length=80, description="Versioned id of the prompt (or rule set) that produced it.")


class Findings(_Model):
    """Findings for one version of one catalog record. Only verified values are present."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    record_id: str = Field(max_length=40, description="pubmed:<PMID> or ctgov:<NCT id>")
    version: int | None = Field(None, ge=0, description="Catalog version of the record these findings describe.")
    record_kind: Literal["article", "trial"]
    design: DesignLabel | None = None
    phase: str | None = Field(None, max_length=20, description="'I', 'Ib', 'II', 'I/II', 'III', 'IV'")
    randomised: bool | None = None
    blinding: Blinding | None = None
    n_randomised: int | None = Field(None, ge=0)
    n_enrolled: int | None = Field(None, ge=0, description="Enrolled / registered enrolment (trials: as registered).")
    n_analysed: int | None = Field(None, ge=0)
    population: Population = Field(default_factory=Population)
    interventions: list[Phrase] = Field(default_factory=list, max_length=10)
    comparator: str | None = Field(None, max_length=200)
    arms: list[Arm] = Field(default_factory=list, max_length=6, description="Arms with their sizes when stated.")
    outcomes: list[Outcome] = Field(default_factory=list, max_length=60)
    conclusion: str | None = Field(None, max_length=3000, description="The authors' conclusion, verbatim.")
    status: str | None = Field(None, max_length=40, description="Trials: overall recruitment status.")
    stopped_early: bool | None = Field(None, description="Stopped or terminated early, as the record says.")
    why_stopped: str | None = Field(None, max_length=500)
    registrations: list[Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=list, max_length=20, description="Trial registry ids the record carries (NCT...).")
    quotes: list[Quote] = Field(default_factory=list, max_length=120)
    provenance: dict[Annotated[str, StringConstraints(max_length=40)], Provenance] = Field(
        default_factory=dict, description="Where each top-level field's value came from.")
    warnings: list[Annotated[str, StringConstraints(max_length=300)]] = Field(default_factory=list, max_length=20)
    dropped: list[DroppedField] = Field(default_factory=list, max_length=400)
    extraction: ExtractionInfo


def key_outcome(findings: Findings) -> Outcome | None:
    """The finding a reader should see first: the primary comparison's result, else the likeliest result sentence
    with a direction, else a primary outcome with a value. None when the record reports no result."""
    reported = [o for o in findings.outcomes if o.direction is not None and o.quote]
    if not reported:
        return next((o for o in findings.outcomes if o.primary and o.quote and o.value is not None), None)
    return max(reported, key=lambda o: (o.primary, o.result_probability or 0.0, o.source != "rules"))


# ------------------------------------------------------------------------------------------------
# What a language model is asked to fill
# ------------------------------------------------------------------------------------------------

class LLMOutcome(BaseModel):
    name: str = Field("", max_length=50)
    kind: OutcomeKind = "other"
    measure: EffectMeasure = "other"
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    direction: Direction | None = None
    quote: str = Field("", max_length=160)


class LLMFindings(BaseModel):
    """Defaults make validation tolerant of missing keys (servers without grammar support);
    `llm_schema()` still marks every key required, so a grammar makes the model write them all.
    Field order is the order a grammar makes the model write them: what rules read worst comes
    first, so an answer cut off at max_tokens loses the least useful part (see extract._salvage).
    Bounds are tight on purpose: filled to the limit the answer is about 1,800 characters. Stage and
    line of therapy are not asked: the rule readers find them when the record names them, and a
    model's paraphrase ("second-line") could not be verified against the text anyway."""

    cancer_type: str | None = Field(None, max_length=60)
    biomarkers: list[Annotated[str, StringConstraints(max_length=30)]] = Field(default_factory=list, max_length=3)
    interventions: list[Annotated[str, StringConstraints(max_length=60)]] = Field(default_factory=list, max_length=2)
    comparator: str | None = Field(None, max_length=60)
    n_randomised: int | None = None
    n_analysed: int | None = None
    outcomes: list[LLMOutcome] = Field(default_factory=list, max_length=3)
    conclusion: str | None = Field(None, max_length=300)


# ------------------------------------------------------------------------------------------------
# Schema documents
# ------------------------------------------------------------------------------------------------

def schema() -> dict[str, Any]:
    """The published JSON schema of `Findings` (draft 2020-12), as committed in SCHEMA_FILE."""
    body = Findings.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **body}


def llm_schema() -> dict[str, Any]:
    """The JSON schema sent to the model: `LLMFindings` with every property required (so a grammar
    makes the model emit each key once, in order) and no titles (fewer tokens in hint-only mode)."""
    return _require_all(LLMFindings.model_json_schema())


def _require_all(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _require_all(v) for k, v in node.items() if k not in ("title", "default")}
        if isinstance(out.get("properties"), dict):
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_require_all(v) for v in node]
    return node


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    """Write the published schema; run after changing `Findings`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema_text(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_schema())
