"""Librarian curation: what OncoLit watches (saved searches), what it may cite (include/exclude rules and
per-record decisions), who may change it (users, roles, API keys) and the append-only audit of every change.

    from ingest.curation import Curation, evaluate_batch
    cur = Curation(catalog)                    # applies the m004_curation migration if needed
    cur.is_excluded("pubmed:123")              # for index sync, search, QA and digests
    cur.visible(ids); cur.exclusions(); cur.pinned("melanoma")
    evaluate_batch(catalog, batch.items)       # ingest-time hook, after each committed batch

`Curation` and friends load on first use: `ingest.catalog.migrations` imports this package's
`migrations` module, and the service itself imports the catalog, so an eager import would be circular.
"""

from __future__ import annotations

import importlib
from typing import Any

from ingest.curation.access import ROLES, User
from ingest.curation.rules import FIELDS, CurationError, PermissionDenied, Rule, Verdict, normalise_record_id

_LAZY = {name: "ingest.curation.service" for name in (
    "Curation", "ImportReport", "QueueItem", "QueuePage", "ensure_schema", "evaluate_batch")}
_LAZY |= {"CuratedSearcher": "ingest.curation.reading", "without_excluded": "ingest.curation.reading"}

__all__ = ["FIELDS", "ROLES", "CuratedSearcher", "Curation", "CurationError", "ImportReport", "PermissionDenied",
           "QueueItem", "QueuePage", "Rule", "User", "Verdict", "ensure_schema", "evaluate_batch",
           "normalise_record_id", "without_excluded"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
