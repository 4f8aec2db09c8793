"""Include/exclude rules: what a rule can test, how values are normalised, and the verdict.

How a record's fate is decided (`Policy.verdict`), first match wins:
1. A librarian's decision on the record: `excluded` hides it, `approved` shows it (whatever the rules say:
   the record itself was read). A decision may precede the record (an imported PMID).
2. Any active exclude rule that matches hides it.
3. Include rules are allow-lists, one per field: when a field has active include rules, a record must
   match one of them. Records of a kind without that field (a trial has no journal) and records whose
   field is empty (no MeSH yet: unknown, not a mismatch) are not held to that list.
Otherwise the record is kept. Retraction and deletion are the catalog's business, not the rules'.

Matching is case-insensitive. `journal` takes an ISSN (print, electronic or linking) or a title (full,
ISO abbreviation or MEDLINE abbreviation); `phrase` looks for the words in title, abstract and keywords;
`mesh` matches descriptors (articles) and condition/intervention terms with their ancestors (trials);
`trial_status` and `phase` take the registry's spelling, loosely (`recruiting`, `phase 2`, `2`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ingest.errors import CurationError as CurationError  # re-exported: ingest.curation.CurationError
from ingest.errors import PermissionDenied as PermissionDenied  # re-exported: ingest.curation.PermissionDenied

Action = Literal["include", "exclude"]
FIELDS: dict[str, str] = {
    "journal": "journal ISSN or title (articles)",
    "publication_type": "PubMed publication type, e.g. Editorial (articles)",
    "language": "PubMed language code, e.g. eng (articles)",
    "mesh": "MeSH descriptor or CT.gov condition/intervention term",
    "keyword": "author or registry keyword, exactly",
    "phrase": "words anywhere in title, abstract or keywords",
    "record_id": "one record: PMID, NCT id, pubmed:… or ctgov:…",
    "trial_status": "CT.gov overall status, e.g. TERMINATED (trials)",
    "phase": "CT.gov phase, e.g. PHASE1 (trials)",
}
ARTICLE_FIELDS = frozenset({"journal", "publication_type", "language", "mesh", "keyword", "phrase", "record_id"})
TRIAL_FIELDS = frozenset({"mesh", "keyword", "phrase", "record_id", "trial_status", "phase"})
ISSN_RE = re.compile(r"^\d{4}-?\d{3}[\dXx]$")
PMID_RE = re.compile(r"^(?:pubmed:|pmid:?\s*)?(\d{1,9})$", re.IGNORECASE)
NCT_RE = re.compile(r"^(?:ctgov:)?(nct\d{8})$", re.IGNORECASE)


def normalise_record_id(value: str) -> str:
    """`12345678`, `PMID:12345678`, `pubmed:12345678` -> `pubmed:12345678`; NCT ids -> `ctgov:NCT…`."""
    text = value.strip().rstrip(",;")
    if m := PMID_RE.match(text):
        return f"pubmed:{m.group(1)}"
    if m := NCT_RE.match(text):
        return f"ctgov:{m.group(1).upper()}"
    raise CurationError(f"{value!r} is not a record id (PMID, NCT id, pubmed:… or ctgov:…)")


def _phase(value: str) -> str:
    text = re.sub(r"[\s_/-]+", "", value.strip().upper())
    text = text.removeprefix("PHASE")
    roman = {"I": "1", "II": "2", "III": "3", "IV": "4"}
    text = roman.get(text, text)
    if text in {"0", "EARLY1", "EARLYPHASE1"}:
        return "EARLY_PHASE1"
    if text in {"NA", "N/A"}:
        return "NA"
    return f"PHASE{text}"


def normalise_value(field_name: str, value: str) -> str:
    """The stored, comparable spelling of a rule value (raises on values that cannot match anything)."""
    if field_name not in FIELDS:
        raise CurationError(f"unknown rule field {field_name!r}; choose one of {', '.join(FIELDS)}")
    text = " ".join(value.split())
    if not text:
        raise CurationError("a rule needs a value")
    if field_name == "record_id":
        return normalise_record_id(text)
    if field_name == "journal" and ISSN_RE.match(text):
        digits = text.replace("-", "").upper()
        return f"{digits[:4]}-{digits[4:]}"
    if field_name == "trial_status":
        return re.sub(r"[\s-]+", "_", text.upper())
    if field_name == "phase":
        return _phase(text)
    return text.lower()


def _lower(values: Iterable[str | None]) -> set[str]:
    return {" ".join(v.split()).lower() for v in values if v and v.strip()}


def _issn(value: str | None) -> str | None:
    if not value:
        return None
    digits = value.replace("-", "").strip().upper()
    return f"{digits[:4]}-{digits[4:]}" if len(digits) == 8 else None


@dataclass(frozen=True)
class Facets:
    """What rules can see of one record, normalised once."""

    record_id: str
    kind: str
    values: dict[str, set[str]]
    text: str  # lower-cased title + abstract + keywords, for `phrase`

    def has(self, field_name: str) -> bool:
        allowed = ARTICLE_FIELDS if self.kind == "article" else TRIAL_FIELDS
        return field_name in allowed


def facets_of(record: BaseModel | dict[str, Any]) -> Facets:
    """Facets of a typed record or of its stored fields (`model_dump(mode="json")`: no validation needed)."""
    f = record if isinstance(record, dict) else record.model_dump(mode="json")
    kind = f.get("kind", "")
    if kind == "article":
        rid = f"pubmed:{f['pmid']}"
        j = f.get("journal") or {}
        issns = {i for i in (_issn(j.get("issn")), _issn(j.get("issn_linking"))) if i}
        keywords = list(f.get("keywords") or [])
        values = {
            "journal": issns | _lower([j.get("title"), j.get("iso_abbreviation"), j.get("medline_ta")]),
            "publication_type": _lower(f.get("publication_types") or []),
            "language": _lower(f.get("languages") or []),
            "mesh": _lower(h.get("descriptor") for h in f.get("mesh_headings") or []),
            "keyword": _lower(keywords),
        }
        abstract = " ".join(s.get("text") or "" for s in f.get("abstract") or [])
        text = " ".join([f.get("title") or "", abstract, *keywords])
    elif kind == "trial":
        rid = f"ctgov:{f['nct_id']}"
        terms = [t.get("term") for key in ("condition_mesh", "condition_mesh_ancestors", "intervention_mesh",
                                          "intervention_mesh_ancestors") for t in f.get(key) or []]
        keywords, conditions = list(f.get("keywords") or []), list(f.get("conditions") or [])
        status = f.get("overall_status")
        values = {
            "mesh": _lower(terms + conditions),
            "keyword": _lower(keywords),
            "trial_status": {status.upper()} if status else set(),
            "phase": {p.upper() for p in (f.get("design") or {}).get("phases") or []},
        }
        title = f.get("brief_title") or f.get("official_title") or ""
        text = " ".join(p for p in (title, f.get("brief_summary"), *keywords, *conditions) if p)
    else:
        raise CurationError(f"cannot apply rules to a record of kind {kind!r}")
    values["record_id"] = {rid}
    return Facets(rid, kind, values, " ".join(text.lower().split()))


@dataclass(frozen=True)
class Rule:
    id: int
    action: Action
    field: str
    value: str
    reason: str
    author: str
    active: bool = True

    @classmethod
    def from_row(cls, row: Any) -> Rule:
        m = row._mapping if hasattr(row, "_mapping") else row
        return cls(m["id"], m["action"], m["field"], m["value"], m["reason"], m["author"], bool(m["active"]))

    def describe(self) -> str:
        return f"rule #{self.id} ({self.action} {self.field} = {self.value!r}): {self.reason}"

    def matches(self, facets: Facets) -> bool:
        if not facets.has(self.field):
            return False
        if self.field == "phrase":
            return re.search(rf"(?<!\w){re.escape(self.value)}(?!\w)", facets.text) is not None
        return self.value in facets.values.get(self.field, ())


@dataclass(frozen=True)
class Verdict:
    """Whether a record is excluded, and why (for librarians; readers never see excluded records)."""

    excluded: bool
    source: Literal["decision", "rule", "allow_list", "none"]
    reason: str = ""
    rule_ids: tuple[int, ...] = ()
    decision: str | None = None
    overridden_rules: tuple[int, ...] = field(default=())  # rules an approval overrides

    def as_dict(self) -> dict[str, Any]:
        return {"excluded": self.excluded, "source": self.source, "reason": self.reason,
                "rule_ids": list(self.rule_ids), "decision": self.decision,
                "overridden_rules": list(self.overridden_rules)}


KEPT = Verdict(False, "none")


def exclude_verdict(hits: Sequence[Rule]) -> Verdict:
    return Verdict(True, "rule", "; ".join(r.describe() for r in hits), tuple(r.id for r in hits))


def allow_list_verdict(field_name: str, allow: Sequence[Rule]) -> Verdict:
    listed = ", ".join(repr(r.value) for r in allow)
    return Verdict(True, "allow_list", f"{field_name} is not one of the included values ({listed}); "
                                       + "; ".join(f"rule #{r.id}: {r.reason}" for r in allow),
                   tuple(r.id for r in allow))


def rules_verdict(rules: Sequence[Rule], facets: Facets) -> Verdict:
    """Steps 2 and 3 of the module docstring (no decision)."""
    active = [r for r in rules if r.active]
    hits = [r for r in active if r.action == "exclude" and r.matches(facets)]
    if hits:
        return exclude_verdict(hits)
    by_field: dict[str, list[Rule]] = {}
    for r in active:
        if r.action == "include":
            by_field.setdefault(r.field, []).append(r)
    for field_name, allow in sorted(by_field.items()):
        if not facets.has(field_name):
            continue
        if field_name != "phrase" and not facets.values.get(field_name):
            continue  # unknown, not a mismatch
        if not any(r.matches(facets) for r in allow):
            return allow_list_verdict(field_name, allow)
    return KEPT


def decision_verdict(status: str | None, reason: str | None, rules_part: Verdict) -> Verdict:
    """Step 1 layered over the rules' verdict."""
    if status == "excluded":
        return Verdict(True, "decision", reason or "excluded by a librarian", decision="excluded")
    if status == "approved":
        return Verdict(False, "decision", "approved by a librarian", decision="approved",
                       overridden_rules=rules_part.rule_ids if rules_part.excluded else ())
    return rules_part
