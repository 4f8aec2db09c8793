"""Issue #18 item 4: one huge record must not stall indexing. The catalog quarantines a record over 8 MB of
text (with a message that says so) and ingests the rest; the chunker indexes at most MAX_CHUNKS_PER_RECORD."""

from __future__ import annotations

from pathlib import Path

from index.chunking import MAX_CHUNKS_PER_RECORD, Chunker, ChunkerConfig
from ingest.catalog import Catalog
from ingest.catalog.catalog import MAX_RECORD_BYTES
from ingest.records import AbstractSection, Article
from ingest.source import ParsedItem


def _item(pmid: str, sections: list[str]) -> ParsedItem:
    record = Article(pmid=pmid, title=f"Record {pmid}",
                     abstract=[AbstractSection(label=f"PART {i}", text=t) for i, t in enumerate(sections)])
    return ParsedItem(record=record, raw=b"<PubmedArticle/>", raw_format="pubmed-xml")


def test_an_oversized_record_is_quarantined_and_the_batch_goes_in(tmp_path: Path) -> None:
    part = "Tumour response was assessed every eight weeks. " * (MAX_RECORD_BYTES // 6 // 48 + 10)
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        outcome = catalog.ingest([_item("1", [part] * 6), _item("2", ["A normal abstract."])])
        assert outcome.counts["new"] == 1 and outcome.counts["quarantined"] == 1
        assert catalog.get("pubmed:2")["title"] == "Record 2"
        (entry,) = catalog.quarantine()
        assert entry.record_id == "pubmed:1" and "MB a record may hold" in entry.error


def test_the_chunker_caps_chunks_per_record() -> None:
    words = " ".join(f"Sentence {i} reports a distinct finding about tumour {i}." for i in range(6000))
    chunker = Chunker(ChunkerConfig(max_tokens=64, overlap_tokens=8, max_title_tokens=16))
    chunks = chunker.chunk(_item("3", [words]).record, 1)
    assert len(chunks) == MAX_CHUNKS_PER_RECORD
