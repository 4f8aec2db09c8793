"""PubMed records from files: real NLM records (with their real publication types) and the constructed update
files, read with the product's own parser (`ingest.pubmed_xml`).

- `pubmed/real/` (Biopython's and BioMCP's efetch XML; MEDLINE text via the design classifier's reader): the only
  records here whose publication types and MeSH come from NLM indexers — the gold for "design from publication
  types" in the `grading` suite. Few of them name a design.
- `pubmed/constructed/*.xml.gz`: real PubMedQA and HoC abstracts in update-file format with a *placeholder*
  publication type ("Journal Article") — never a design label. Used by `perf` (ingest throughput) and as a
  corpus.
"""

from __future__ import annotations

from pathlib import Path

from ingest.errors import OncoLitError
from ingest.pubmed_xml import iter_pubmed_file
from ingest.records import Article
from ingest.source import ParsedItem


def xml_files(path: Path | str) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    return sorted(f for f in p.rglob("*") if f.is_file() and (f.name.endswith(".xml") or f.name.endswith(".xml.gz")))


def load_pubmed_items(path: Path | str, limit: int | None = None) -> list[ParsedItem]:
    """Parsed items of every PubmedArticleSet file under `path` (other XML — esearch, einfo, ... — skipped)."""
    items: list[ParsedItem] = []
    for file in xml_files(path):
        try:
            for item in iter_pubmed_file(file):
                items.append(item)
                if limit is not None and len(items) >= limit:
                    return items
        except OncoLitError:
            continue  # not a PubmedArticleSet (esearch, einfo, an HTML error page, ...)
    return items


def load_articles(path: Path | str, limit: int | None = None) -> list[Article]:
    return [i.record for i in load_pubmed_items(path, limit) if isinstance(i.record, Article)]
