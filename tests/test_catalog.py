"""Catalog behaviour: identity, versions, idempotency, deletions, retractions, links, migrations."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine, inspect, select, text

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from ingest.catalog.migrations import MIGRATIONS
from ingest.errors import CatalogError, RecordNotFound
from ingest.records import Article, CommentCorrection, DataBank, Deletion
from ingest.source import ParsedItem


def item(record, raw: bytes = b"<PubmedArticle/>") -> ParsedItem:
    return ParsedItem(record, raw, "pubmed-xml")


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    """An empty catalog, on SQLite and on PostgreSQL in turn (conftest `catalog_url`)."""
    with Catalog(catalog_url) as cat:
        yield cat


def test_new_then_unchanged_then_revised(catalog: Catalog) -> None:
    a1 = Article(pmid="101", title="Adjuvant therapy in stage III melanoma")
    assert catalog.ingest_batch([item(a1)])["new"] == 1
    before = catalog.snapshot()
    assert catalog.ingest_batch([item(a1)])["unchanged"] == 1
    assert catalog.snapshot() == before, "ingesting the same input twice must change nothing"

    a2 = a1.model_copy(update={"title": "Adjuvant therapy in stage III melanoma (corrected)",
                               "dates": {"revised": dt.date(2026, 11, 20)}})
    assert catalog.ingest_batch([item(a2)])["revised"] == 1
    data = catalog.get("pubmed:101")
    assert data["version"] == 2
    assert [v["version"] for v in data["versions"]] == [1, 2]
    changed = {c["field"] for c in data["versions"][1]["changes"]}
    assert {"title", "dates"} <= changed
    assert catalog.stats()["total"] == {"records": 1, "active": 1, "deleted": 0, "retracted": 0, "versions": 2}


def test_same_record_twice_in_one_batch_is_one_record(catalog: Catalog) -> None:
    a = Article(pmid="7", title="x")
    counts = catalog.ingest_batch([item(a), item(a)])
    assert counts == {"new": 1, "unchanged": 1}
    assert catalog.stats()["total"]["records"] == 1


def test_older_revision_arriving_late_is_skipped(catalog: Catalog) -> None:
    new = Article(pmid="5", title="new", dates={"revised": dt.date(2026, 11, 20)})
    old = Article(pmid="5", title="old", dates={"revised": dt.date(2026, 1, 1)})
    catalog.ingest_batch([item(new)])
    assert catalog.ingest_batch([item(old)])["stale"] == 1
    assert catalog.get("pubmed:5")["title"] == "new"


def test_raw_payload_round_trips_compressed(catalog: Catalog) -> None:
    raw = b"<PubmedArticle>" + b"x" * 5000 + b"</PubmedArticle>"
    catalog.ingest_batch([item(Article(pmid="9", title="t"), raw)])
    assert catalog.raw("pubmed:9", 1) == raw
    with catalog.engine.connect() as conn:
        stored = conn.execute(select(t.record_versions.c.raw)).scalar_one()
    assert len(stored) < len(raw) / 10


def test_delete_citation_marks_deleted_and_reappearance_reactivates(catalog: Catalog) -> None:
    catalog.ingest_batch([item(Article(pmid="11", title="t"))])
    assert catalog.ingest_batch([item(Deletion(pmid="11"))])["deleted"] == 1
    assert catalog.ingest_batch([item(Deletion(pmid="11"))])["unchanged"] == 1
    data = catalog.get("pubmed:11")
    assert data["deleted"] and data["state"] == "deleted"
    assert catalog.stats()["total"]["deleted"] == 1
    # Deleting a PMID never seen leaves a tombstone, so the deletion is not lost.
    catalog.ingest_batch([item(Deletion(pmid="12"))])
    assert catalog.get("pubmed:12")["deleted"]


def test_retraction_notice_flags_the_retracted_article_in_either_order(catalog: Catalog) -> None:
    notice = Article(pmid="900", title="Retraction: X", publication_types=["Retraction of Publication"],
                     comments_corrections=[CommentCorrection(ref_type="RetractionOf", pmid="100")])
    # Notice first, article later.
    catalog.ingest_batch([item(notice)])
    catalog.ingest_batch([item(Article(pmid="100", title="X"))])
    assert catalog.get("pubmed:100")["retracted"]
    assert catalog.get("pubmed:100")["retraction_notices"] == ["pubmed:900"]
    # Article first, notice later.
    catalog.ingest_batch([item(Article(pmid="200", title="Y"))])
    seq = catalog.max_change_seq()
    catalog.ingest_batch([item(notice.model_copy(update={
        "pmid": "901", "comments_corrections": [CommentCorrection(ref_type="RetractionOf", pmid="200")]}))])
    assert catalog.get("pubmed:200")["retracted"]
    changed = [r["id"] for batch in catalog.changed_since(seq) for r in batch]
    assert "pubmed:200" in changed, "a retraction must reach derived stores (index, digests)"
    assert catalog.stats()["total"]["retracted"] == 2


def test_article_flags_its_own_retraction(catalog: Catalog) -> None:
    a = Article(pmid="300", title="Z", comments_corrections=[CommentCorrection(ref_type="RetractionIn", pmid="301")])
    catalog.ingest_batch([item(a)])
    assert catalog.get("pubmed:300")["retracted"]


def test_trial_links_from_databank_and_text(catalog: Catalog) -> None:
    a = Article(pmid="400", title="A phase III trial (NCT01234567)",
                databanks=[DataBank(name="ClinicalTrials.gov", accession_numbers=["NCT07654321"])])
    catalog.ingest_batch([item(a)])
    assert catalog.get("pubmed:400")["trials"] == ["ctgov:NCT01234567", "ctgov:NCT07654321"]


def test_changed_since_pages_in_order(catalog: Catalog) -> None:
    catalog.ingest_batch([item(Article(pmid=str(i), title="t")) for i in range(1, 8)])
    seq = catalog.max_change_seq()
    catalog.ingest_batch([item(Article(pmid="3", title="t2"))])
    batches = list(catalog.changed_since(0, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [r["id"] for b in catalog.changed_since(seq) for r in b] == ["pubmed:3"]


def test_saved_searches_and_watermarks(catalog: Catalog) -> None:
    catalog.add_search("melanoma", "pubmed", "melanoma[mh]", {"x": "1"}, "0 6 * * *", "ana")
    with pytest.raises(CatalogError, match="already exists"):
        catalog.add_search("melanoma", "pubmed", "other")
    catalog.set_watermark("melanoma", dt.date(2026, 11, 5))
    assert catalog.get_search("melanoma")["watermark"] == dt.date(2026, 11, 5)
    assert [s["name"] for s in catalog.list_searches("pubmed")] == ["melanoma"]
    catalog.remove_search("melanoma")
    with pytest.raises(RecordNotFound):
        catalog.get_search("melanoma")


def test_get_unknown_record_says_what_ids_look_like(catalog: Catalog) -> None:
    with pytest.raises(RecordNotFound, match="pubmed:12345678"):
        catalog.get("pubmed:0")


def test_migrations_are_named_ordered_and_recorded(catalog_url: str) -> None:
    url = catalog_url
    Catalog(url).close()
    with Catalog(url) as cat, cat.engine.connect() as conn:  # reopening applies nothing twice
        names = list(conn.execute(select(t.schema_migrations.c.name)).scalars())
    assert names == [name for name, _ in MIGRATIONS]
    assert all(name[:1] == "m" and name[1:4].isdigit() for name in names)
    assert names == sorted(names)


def test_an_old_catalog_is_brought_up_to_date(catalog_url: str) -> None:
    """A catalog made by an older OncoLit (every step but the last) gets the missing step on open,
    ALTER TABLE included, on either backend."""
    engine = create_engine(catalog_url)
    with engine.begin() as conn:
        t.schema_migrations.create(conn)
        for name, step in MIGRATIONS[:-1]:
            step(conn)
            conn.execute(t.schema_migrations.insert().values(name=name, applied_at=dt.datetime.now(dt.UTC)))
        # m001 creates today's table, with the column m006 adds: drop it, as a pre-m006 catalog
        conn.execute(text("ALTER TABLE ingest_runs DROP COLUMN owner"))
    engine.dispose()
    with Catalog(catalog_url) as cat, cat.engine.connect() as conn:
        assert list(conn.execute(select(t.schema_migrations.c.name)).scalars()) == [n for n, _ in MIGRATIONS]
        assert "owner" in {c["name"] for c in inspect(conn).get_columns("ingest_runs")}
        run = cat.start_run("pubmed", "files")
    assert cat.runs()[0]["id"] == run


def test_typed_record_round_trip(catalog: Catalog) -> None:
    a = Article(pmid="55", title="Ω-3 fatty acids and café workers 癌", dates={"entrez": dt.date(2026, 11, 3)})
    catalog.ingest_batch([item(a)])
    assert catalog.get_record("pubmed:55") == a
    rows = list(catalog.iter_records())
    assert rows[0][1] == a
