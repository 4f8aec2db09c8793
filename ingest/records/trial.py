"""`Trial`: one ClinicalTrials.gov registration (API v2 study) as OncoLit keeps it.

Built from API v2 JSON by `ingest.ctgov_json`; everything later reads this model, never the JSON.
Enumerations keep the API's spelling (`RECRUITING`, `PHASE2`, `ACTUAL`) so filters written against
the API mean the same thing here. Responses requested with `fields=` are partial: `modules` records
which parts of the study were present, so a missing module is "unknown", not "empty".
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from ingest.records.common import Model, PartialDate

WITHDRAWN = "WITHDRAWN"
# Reference types whose article reports this trial: RESULT is entered by the sponsor; DERIVED is
# added by ClinicalTrials.gov from PubMed records that carry the NCT id in their data bank list.
RESULT_REFERENCE_TYPES = frozenset({"RESULT", "DERIVED"})


class TrialDate(PartialDate):
    """A status-module date ("2016-07", "2019-12-20") with its kind: ACTUAL or ESTIMATED (anticipated)."""

    type: str | None = None


class Organization(Model):
    """A sponsor, collaborator or the registering organisation; `agency_class` is NIH/INDUSTRY/OTHER/..."""

    name: str
    agency_class: str | None = None


class SecondaryId(Model):
    id: str
    type: str | None = None
    domain: str | None = None
    link: str | None = None


class Design(Model):
    """designModule: how the study is built; enrollment is a count with ACTUAL/ESTIMATED type."""

    study_type: str | None = None  # INTERVENTIONAL | OBSERVATIONAL | EXPANDED_ACCESS
    phases: list[str] = Field(default_factory=list)  # EARLY_PHASE1, PHASE1..PHASE4, NA
    allocation: str | None = None
    intervention_model: str | None = None
    observational_model: str | None = None
    time_perspective: str | None = None
    masking: str | None = None
    who_masked: list[str] = Field(default_factory=list)
    primary_purpose: str | None = None
    enrollment_count: int | None = None
    enrollment_type: str | None = None


class Arm(Model):
    label: str
    type: str | None = None
    description: str | None = None
    intervention_names: list[str] = Field(default_factory=list)  # "Drug: Pembrolizumab"


class Intervention(Model):
    name: str
    type: str | None = None
    description: str | None = None
    other_names: list[str] = Field(default_factory=list)
    arm_group_labels: list[str] = Field(default_factory=list)


class Outcome(Model):
    measure: str
    description: str | None = None
    time_frame: str | None = None


class Eligibility(Model):
    criteria: str | None = None
    sex: str | None = None  # ALL | FEMALE | MALE
    minimum_age: str | None = None  # "18 Years", as registered
    maximum_age: str | None = None
    healthy_volunteers: bool | None = None
    std_ages: list[str] = Field(default_factory=list)  # CHILD | ADULT | OLDER_ADULT
    study_population: str | None = None
    sampling_method: str | None = None


class Reference(Model):
    pmid: str | None = None
    type: str | None = None  # BACKGROUND | RESULT | DERIVED
    citation: str | None = None


class MeshTerm(Model):
    id: str
    term: str


class Trial(Model):
    """A ClinicalTrials.gov study. `record_id` is `ctgov:<NCT id>`; `last_update_posted` orders versions."""

    kind: Literal["trial"] = "trial"
    nct_id: str
    # protocolSection module names present (plus "hasResults", "derivedSection", "resultsSection"):
    # lets consumers tell a partial (`fields=`) response from an empty module.
    modules: list[str] = Field(default_factory=list)
    org_study_id: str | None = None
    organization: Organization | None = None
    secondary_ids: list[SecondaryId] = Field(default_factory=list)
    brief_title: str | None = None
    official_title: str | None = None
    acronym: str | None = None
    overall_status: str | None = None
    last_known_status: str | None = None
    why_stopped: str | None = None
    status_verified: PartialDate | None = None
    start_date: TrialDate | None = None
    primary_completion_date: TrialDate | None = None
    completion_date: TrialDate | None = None
    first_posted: TrialDate | None = None
    results_first_posted: TrialDate | None = None
    last_update_posted: TrialDate | None = None
    lead_sponsor: Organization | None = None
    collaborators: list[Organization] = Field(default_factory=list)
    brief_summary: str | None = None
    detailed_description: str | None = None
    conditions: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    design: Design = Field(default_factory=Design)
    arms: list[Arm] = Field(default_factory=list)
    interventions: list[Intervention] = Field(default_factory=list)
    primary_outcomes: list[Outcome] = Field(default_factory=list)
    secondary_outcomes: list[Outcome] = Field(default_factory=list)
    other_outcomes: list[Outcome] = Field(default_factory=list)
    eligibility: Eligibility = Field(default_factory=Eligibility)
    location_count: int = 0
    countries: list[str] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)
    has_results: bool = False
    condition_mesh: list[MeshTerm] = Field(default_factory=list)
    condition_mesh_ancestors: list[MeshTerm] = Field(default_factory=list)
    intervention_mesh: list[MeshTerm] = Field(default_factory=list)
    intervention_mesh_ancestors: list[MeshTerm] = Field(default_factory=list)

    @property
    def record_id(self) -> str:
        return f"ctgov:{self.nct_id}"

    @property
    def title(self) -> str:
        """What a reader sees first: the brief title, else the official one."""
        return self.brief_title or self.official_title or ""

    @property
    def withdrawn(self) -> bool:
        """Withdrawn before enrolling anyone: flagged everywhere the trial appears."""
        return self.overall_status == WITHDRAWN

    @property
    def pmids(self) -> list[str]:
        """PMIDs of every linked reference, in registry order."""
        return list(dict.fromkeys(r.pmid for r in self.references if r.pmid))

    @property
    def result_pmids(self) -> list[str]:
        """PMIDs of articles reporting this trial (RESULT or DERIVED references), not background reading."""
        return list(dict.fromkeys(
            r.pmid for r in self.references if r.pmid and r.type in RESULT_REFERENCE_TYPES))

    @property
    def last_updated(self) -> dt.date | None:
        """The date CT.gov last posted a change: what the change window and version order use."""
        return self.last_update_posted.as_date() if self.last_update_posted else None

    @property
    def phases(self) -> list[str]:
        return self.design.phases

    @property
    def text(self) -> str:
        """Searchable text: titles, summaries, conditions, interventions, outcomes and eligibility."""
        parts: list[str | None] = [self.brief_title, self.official_title, self.acronym,
                                   self.brief_summary, self.detailed_description]
        parts += self.conditions + self.keywords
        for iv in self.interventions:
            parts += [iv.name, *iv.other_names, iv.description]
        for arm in self.arms:
            parts += [arm.label, arm.description]
        for outcome in self.primary_outcomes + self.secondary_outcomes:
            parts += [outcome.measure, outcome.description]
        parts.append(self.eligibility.criteria)
        return "\n".join(p for p in parts if p)
