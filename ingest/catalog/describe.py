"""What the catalog needs to know about each record kind: its columns, its links, its changes.

One small function per kind keeps the catalog itself free of source-specific rules.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ingest.records import Article, Deletion
from ingest.records.common import canonical_json
from ingest.source import ParsedItem

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
    return list({(link.dst, link.kind): link for link in links}.values())


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


def is_partial_trial(item: ParsedItem) -> bool:
    """A CT.gov payload requested with `fields=`: full API v2 studies always carry derivedSection
    and a last-update date, so a study without them is a partial view, not the whole study."""
    record = item.record
    return item.raw_format == "ctgov-json" and getattr(record, "kind", None) == "trial" and (
        "derivedSection" not in record.modules or record.last_update_posted is None)


def merge_partial(item: ParsedItem, stored_raw: bytes) -> ParsedItem:
    """Lay a partial payload over the stored study: what it carries wins, what it lacks is kept.

    Without this, two partial captures of one study (say, a search that asked for a few fields and
    a single-study request) would alternate as "revisions" on every ingest.
    """
    from ingest.ctgov_json import parse_study

    merged = _deep_merge(json.loads(stored_raw), json.loads(item.raw))
    return ParsedItem(parse_study(merged), canonical_json(merged).encode("utf-8"), item.raw_format)


def _deep_merge(base: Any, top: Any) -> Any:
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = _deep_merge(base.get(key), value)
        return out
    if (isinstance(base, list) and isinstance(top, list) and len(base) == len(top)
            and all(isinstance(x, dict) for x in base + top)):
        return [_deep_merge(b, t) for b, t in zip(base, top)]  # same items, fewer of their fields
    return top


def is_deletion(record: BaseModel) -> bool:
    return isinstance(record, Deletion)
