"""What the catalog needs to know about each record kind: its columns, its links, its changes.

One small function per kind keeps the catalog itself free of source-specific rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ingest.records import Article, Deletion

# Article fields whose before/after values are short enough to keep in a change list.
_SCALAR_ARTICLE_FIELDS = ("title", "publication_status", "citation_status", "doi", "pmcid")


@dataclass(frozen=True)
class Link:
    dst: str
    kind: str
    detail: str | None = None


@dataclass(frozen=True)
class Described:
    source: str
    kind: str
    title: str
    published: dt.date | None
    source_updated: dt.date | None
    retracted: bool
    links: list[Link] = field(default_factory=list)


def describe(record: BaseModel) -> Described:
    if isinstance(record, Article):
        return _describe_article(record)
    if getattr(record, "kind", None) == "trial":
        return _describe_trial(record)
    raise TypeError(f"the catalog cannot store {type(record).__name__}")


def _describe_article(a: Article) -> Described:
    links = [Link(f"ctgov:{nct}", "reports_trial") for nct in a.nct_ids]
    for cc in a.comments_corrections:
        kind = {"RetractionIn": "retracted_by", "RetractionOf": "retracts", "ErratumIn": "erratum_in",
                "ExpressionOfConcernIn": "concern_in"}.get(cc.ref_type)
        if kind and cc.pmid:
            links.append(Link(f"pubmed:{cc.pmid}", kind))
    return Described(source="pubmed", kind="article", title=a.title or a.book_title or "",
                     published=a.published, source_updated=a.dates.get("revised"),
                     retracted=a.retracted, links=_unique(links))


def _describe_trial(t: Any) -> Described:
    links = [Link(f"pubmed:{ref.pmid}", "references", (ref.type or None)) for ref in t.references if ref.pmid]
    first_posted = t.first_posted.as_date() if t.first_posted else None
    start = t.start_date.as_date() if t.start_date else None
    return Described(source="ctgov", kind="trial", title=t.title or "", published=first_posted or start,
                     source_updated=t.last_updated, retracted=False, links=_unique(links))


def _unique(links: list[Link]) -> list[Link]:
    return list({(l.dst, l.kind): l for l in links}.values())


def changes_between(old: dict[str, Any] | None, new: BaseModel) -> list[dict[str, Any]]:
    """The change list stored on a new version: what a user would want to know moved."""
    if old is None:
        return []
    if getattr(new, "kind", None) == "trial":
        from ingest.ctgov_json import trial_changes  # the CT.gov module owns trial semantics
        return trial_changes(type(new).model_validate(old), new)
    new_data = new.model_dump(mode="json")
    changes = []
    for key in sorted(set(old) | set(new_data)):
        if old.get(key) == new_data.get(key):
            continue
        if key in _SCALAR_ARTICLE_FIELDS:
            changes.append({"field": key, "before": old.get(key), "after": new_data.get(key)})
        else:
            changes.append({"field": key})
    return changes


def is_deletion(record: BaseModel) -> bool:
    return isinstance(record, Deletion)
