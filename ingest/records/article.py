"""`Article`: one PubMed citation (journal or book article) as OncoLit keeps it.

Built from PubMed XML by `ingest.pubmed_xml`; everything later (index, synthesis, curation) reads
this model, never the XML.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from ingest.records.common import Model, PartialDate, find_nct_ids

# CommentsCorrections RefType values that change how a record may be used.
RETRACTION_IN = "RetractionIn"          # this record is retracted by the referenced notice
RETRACTION_OF = "RetractionOf"          # this record is a retraction notice of the referenced one
EXPRESSION_OF_CONCERN_IN = "ExpressionOfConcernIn"
ERRATUM_IN = "ErratumIn"


class AbstractSection(Model):
    """One <AbstractText>: label ("RESULTS") and NLM category ("RESULTS", "UNASSIGNED") kept."""

    label: str | None = None
    nlm_category: str | None = None
    text: str


class Author(Model):
    last_name: str | None = None
    fore_name: str | None = None
    initials: str | None = None
    collective_name: str | None = None
    affiliations: list[str] = Field(default_factory=list)
    orcid: str | None = None

    @property
    def display_name(self) -> str:
        if self.collective_name:
            return self.collective_name
        return " ".join(p for p in (self.last_name, self.initials or self.fore_name) if p)


class Journal(Model):
    title: str | None = None
    iso_abbreviation: str | None = None
    issn: str | None = None
    issn_type: str | None = None  # "Print" | "Electronic"
    issn_linking: str | None = None
    volume: str | None = None
    issue: str | None = None
    medline_ta: str | None = None
    nlm_unique_id: str | None = None
    country: str | None = None


class MeshQualifier(Model):
    name: str
    ui: str | None = None
    major_topic: bool = False


class MeshHeading(Model):
    descriptor: str
    descriptor_ui: str | None = None
    major_topic: bool = False
    qualifiers: list[MeshQualifier] = Field(default_factory=list)


class Chemical(Model):
    name: str
    ui: str | None = None
    registry_number: str | None = None


class Grant(Model):
    grant_id: str | None = None
    acronym: str | None = None
    agency: str | None = None
    country: str | None = None


class DataBank(Model):
    """<DataBank>: e.g. name "ClinicalTrials.gov" with NCT accession numbers."""

    name: str
    accession_numbers: list[str] = Field(default_factory=list)


class CommentCorrection(Model):
    """<CommentsCorrections RefType="RetractionIn">: a link to another citation."""

    ref_type: str
    ref_source: str | None = None
    pmid: str | None = None


class Article(Model):
    """A PubMed record. `record_id` is `pubmed:<PMID>`; the PMID version is kept separately."""

    kind: Literal["article"] = "article"
    pmid: str
    pmid_version: int = 1
    is_book: bool = False
    doi: str | None = None
    pmcid: str | None = None
    pii: str | None = None
    title: str = ""
    vernacular_title: str | None = None
    abstract: list[AbstractSection] = Field(default_factory=list)
    abstract_copyright: str | None = None
    other_abstracts: list[str] = Field(default_factory=list)
    authors: list[Author] = Field(default_factory=list)
    journal: Journal = Field(default_factory=Journal)
    pagination: str | None = None
    pub_date: PartialDate = Field(default_factory=PartialDate)
    article_dates: list[PartialDate] = Field(default_factory=list)  # electronic publication dates
    # PubMed history and citation dates by status: "entrez", "pubmed", "medline", "received",
    # "accepted", "revised" (MedlineCitation/DateRevised), "completed", "created", ...
    dates: dict[str, dt.date] = Field(default_factory=dict)
    publication_types: list[str] = Field(default_factory=list)
    publication_type_uis: list[str] = Field(default_factory=list)
    mesh_headings: list[MeshHeading] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)
    chemicals: list[Chemical] = Field(default_factory=list)
    grants: list[Grant] = Field(default_factory=list)
    databanks: list[DataBank] = Field(default_factory=list)
    comments_corrections: list[CommentCorrection] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    publication_status: str | None = None  # ppublish, epublish, aheadofprint, ...
    citation_status: str | None = None  # MedlineCitation/@Status: MEDLINE, PubMed-not-MEDLINE, In-Process, ...
    # Book-specific (PubmedBookArticle)
    book_title: str | None = None
    publisher: str | None = None

    @property
    def record_id(self) -> str:
        return f"pubmed:{self.pmid}"

    @property
    def abstract_text(self) -> str:
        """Sections joined with their labels, as a reader sees a structured abstract."""
        return "\n".join(f"{s.label}: {s.text}" if s.label else s.text for s in self.abstract)

    @property
    def registered_nct_ids(self) -> list[str]:
        """NCT ids from PubMed's data-bank list alone: structured, so safe to link (text can plant any id)."""
        banked = [acc.upper().replace(" ", "") for bank in self.databanks
                  if bank.name.lower().replace(" ", "") in {"clinicaltrials.gov", "clinicaltrials"}
                  for acc in bank.accession_numbers]
        return list(dict.fromkeys(a for a in banked if a.startswith("NCT")))

    @property
    def nct_ids(self) -> list[str]:
        """Registered trials this article reports: data-bank entries first, then NCT ids in the text."""
        return list(dict.fromkeys(self.registered_nct_ids + find_nct_ids(self.title, self.abstract_text)))

    @property
    def retracted(self) -> bool:
        """True when PubMed links a retraction notice to this article, or the type says so."""
        return any(c.ref_type == RETRACTION_IN for c in self.comments_corrections) or (
            "Retracted Publication" in self.publication_types)

    @property
    def is_retraction_notice(self) -> bool:
        return "Retraction of Publication" in self.publication_types or any(
            c.ref_type == RETRACTION_OF for c in self.comments_corrections)

    @property
    def retracts(self) -> list[str]:
        """PMIDs this notice retracts."""
        return [c.pmid for c in self.comments_corrections if c.ref_type == RETRACTION_OF and c.pmid]

    @property
    def retracted_by(self) -> list[str]:
        return [c.pmid for c in self.comments_corrections if c.ref_type == RETRACTION_IN and c.pmid]

    @property
    def published(self) -> dt.date | None:
        """Best publication date: the print/issue date, else the first electronic date, else entrez."""
        return self.pub_date.as_date() or next(
            (d.as_date() for d in self.article_dates if d.as_date()), None) or self.dates.get("entrez")


class Deletion(Model):
    """<DeleteCitation><PMID>: PubMed withdrew this citation; the catalog marks it deleted."""

    kind: Literal["deletion"] = "deletion"
    pmid: str
    pmid_version: int = 1

    @property
    def record_id(self) -> str:
        return f"pubmed:{self.pmid}"


class Unreadable(Model):
    """A `<PubmedArticle>` that is well-formed XML but no record: no (or an invalid) PMID, or fields that
    fit no model. It travels as an item so the catalog quarantines it raw with its error, instead of the
    whole payload failing and its good records with it (issue 18: one bad record must not block a window).

    Without a PMID there is no identity, so the quarantine keys it by a hash of its bytes: the same
    bytes sent again are the same entry, retried like any other."""

    kind: Literal["unreadable"] = "unreadable"
    pmid: str = ""  # the element's PMID when it had a valid one
    key: str  # sha256 prefix of the raw element
    error: str

    @property
    def record_id(self) -> str:
        return f"pubmed:{self.pmid}" if self.pmid else f"pubmed:unreadable-{self.key}"
