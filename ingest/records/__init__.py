"""The records vocabulary every package shares: `Article` (PubMed) and `Trial` (ClinicalTrials.gov).

A record's identity is its `record_id` (`pubmed:<PMID>` / `ctgov:<NCT id>`); its content is the
parsed model, hashed canonically so that the catalog can tell a revision from a repeat.
"""

from ingest.records.article import (
    AbstractSection,
    Article,
    Author,
    Chemical,
    CommentCorrection,
    DataBank,
    Deletion,
    Grant,
    Journal,
    MeshHeading,
    MeshQualifier,
    Unreadable,
)
from ingest.records.common import PartialDate, content_hash, find_nct_ids
from ingest.records.trial import (
    Arm,
    Design,
    Eligibility,
    Intervention,
    MeshTerm,
    Organization,
    Outcome,
    Reference,
    SecondaryId,
    Trial,
    TrialDate,
)

__all__ = [
    "Arm",
    "Design",
    "Eligibility",
    "Intervention",
    "MeshTerm",
    "Organization",
    "Outcome",
    "Reference",
    "SecondaryId",
    "Trial",
    "TrialDate",
    "Unreadable",
    "AbstractSection",
    "Article",
    "Author",
    "Chemical",
    "CommentCorrection",
    "DataBank",
    "Deletion",
    "Grant",
    "Journal",
    "MeshHeading",
    "MeshQualifier",
    "PartialDate",
    "content_hash",
    "find_nct_ids",
]
