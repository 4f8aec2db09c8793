"""Quarantined records, retried: a poison record is kept raw, so a later run can read it again.

A record whose content the catalog cannot store (a `<PubDate><Year>0</Year>`, say) is kept in the
`quarantine` table with its raw payload and error instead of failing its batch (`Catalog.ingest`).
Each later ingest run of the same source re-parses those payloads with the code it has now and
offers them to the catalog again: after a parser fix they are stored as ordinary records (and
leave the quarantine); until then they stay, one attempt more. A readable payload of the same
record arriving from the source (a corrected revision) also resolves it.

Why the watermark may move past a quarantined record: it is not lost (its bytes are kept and
retried here, and it is reported by the run, `records stats` and `records quarantine`), and
holding the watermark would not help, since upstream sends the same bad bytes on every rerun.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ingest.catalog import Catalog
from ingest.errors import MalformedPayload
from ingest.source import ParsedItem

log = logging.getLogger(__name__)


@dataclass
class RetryOutcome:
    """What retrying a source's quarantine did."""

    retried: int = 0
    recovered: list[str] = field(default_factory=list)  # stored now; out of the quarantine
    still_quarantined: list[str] = field(default_factory=list)


def reparse(raw: bytes, raw_format: str) -> list[ParsedItem]:
    """Parse a kept payload again: a `<PubmedArticle>` element or one CT.gov API v2 study."""
    if raw_format == "pubmed-xml":
        from ingest.pubmed_xml import parse_pubmed_xml
        return parse_pubmed_xml(b"<PubmedArticleSet>" + raw + b"</PubmedArticleSet>")
    if raw_format == "ctgov-json":
        from ingest.ctgov_json import RAW_FORMAT, decode_json, parse_study
        return [ParsedItem(parse_study(decode_json(raw, what="quarantined study")), raw, RAW_FORMAT)]
    raise MalformedPayload(f"quarantined payload has unknown format {raw_format!r}")


def retry_quarantine(catalog: Catalog, source: str, run_id: int | None = None) -> RetryOutcome:
    """Offer every quarantined record of `source` to the catalog again, in one batch."""
    outcome = RetryOutcome()
    items: list[ParsedItem] = []
    for entry in catalog.quarantine(source):
        outcome.retried += 1
        raw, raw_format = catalog.quarantined_raw(entry.record_id)
        try:
            items.extend(reparse(raw, raw_format))
        except MalformedPayload as exc:  # the parser now refuses the bytes outright: keep them as they are
            log.warning("quarantined %s still unreadable: %s", entry.record_id, exc)
            outcome.still_quarantined.append(entry.record_id)
    if items:
        stored = catalog.ingest(items, run_id)
        again = {q.record_id for q in stored.quarantined}
        for item in items:
            rid = item.record.record_id
            (outcome.still_quarantined if rid in again else outcome.recovered).append(rid)
    return outcome
