"""Dataset documents -> the product's records (`Article`) and catalog items, so suites exercise the real path.

Dataset documents are not PubMed records: their ids go into `Article.pmid` as they are (record id
`pubmed:<dataset id>`), they carry no publication types (a placeholder type would be read as a design), and the
raw payload stored in the catalog is the document's JSON with `raw_format` "eval-json".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from ingest.records import AbstractSection, Article
from ingest.source import ParsedItem

RAW_FORMAT = "eval-json"
PREFIX = "pubmed:"


def article(doc_id: str, title: str, sections: Sequence[tuple[str | None, str]] | str,
            mesh: Iterable[str] = ()) -> Article:
    """An Article from a title and either plain text or (label, text) sections."""
    from ingest.records import MeshHeading

    if isinstance(sections, str):
        sections = [(None, sections)]
    abstract = [AbstractSection(label=label or None, text=text.strip()) for label, text in sections if text.strip()]
    return Article(pmid=str(doc_id), title=title or "", abstract=abstract,
                   mesh_headings=[MeshHeading(descriptor=m) for m in mesh])


def catalog_item(record: Article) -> ParsedItem:
    raw = json.dumps({"id": record.pmid, "title": record.title, "abstract": record.abstract_text},
                     ensure_ascii=False).encode("utf-8")
    return ParsedItem(record=record, raw=raw, raw_format=RAW_FORMAT)


def doc_id_of(record_id: str) -> str:
    """The dataset id behind a record id (`pubmed:<id>` -> `<id>`)."""
    return record_id[len(PREFIX):] if record_id.startswith(PREFIX) else record_id
