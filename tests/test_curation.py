"""Curation policy: rules on every field, decisions over rules, change_seq follows visibility, the
ingest-time hook, the queue, saved searches with watermarks and dry-run previews, people and keys,
and the append-only audit log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DatabaseError

from ingest.catalog import Catalog
from ingest.catalog import schema as ct
from ingest.ctgov_json import iter_ctgov_path
from ingest.curation import Curation, CurationError, PermissionDenied, evaluate_batch
from ingest.curation import schema as cs
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.records import Article, Journal
from ingest.source import ParsedItem
from oncolit.settings import Settings

NEJM = "pubmed:22663011"
TRIAL = "ctgov:NCT02576665"


def art(pmid: str, title: str, **fields) -> ParsedItem:
    return ParsedItem(Article(pmid=pmid, title=title, **fields), b"<PubmedArticle/>", "pubmed-xml")


@pytest.fixture
def catalog(catalog_url: str, shared_data: Path) -> Catalog:
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items += list(iter_ctgov_path(shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json"))
    items += [
        art("1001", "Letter: a view on immunotherapy", publication_types=["Letter"], languages=["eng"],
            journal=Journal(title="Journal of Doubtful Results", issn="9999-0001")),
        art("1002", "Survie globale du mélanome", languages=["fre"], keywords=["melanoma"],
            journal=Journal(title="Bulletin du Cancer", issn="0007-4551")),
        art("1003", "Adjuvant nivolumab in resected melanoma", languages=["eng"], keywords=["Adjuvant therapy"],
            publication_types=["Randomized Controlled Trial"], journal=Journal(title="Lancet Oncol")),
    ]
    with Catalog(catalog_url) as cat:  # SQLite and PostgreSQL in turn (conftest `catalog_url`)
        cat.ingest_batch(items)
        yield cat


@pytest.fixture
def cur(catalog: Catalog) -> Curation:
    c = Curation(catalog)
    c.add_user("boot", "ada", "admin")
    c.add_user("ada", "lib", "librarian")
    c.add_user("ada", "rita", "reader")
    return c


def seq(catalog: Catalog, rid: str) -> int:
    with catalog.engine.connect() as conn:
        return conn.execute(select(ct.records.c.change_seq).where(ct.records.c.id == rid)).scalar_one()


@pytest.mark.parametrize("field,value,hidden", [
    ("journal", "9999-0001", "pubmed:1001"),                    # by ISSN
    ("journal", "0028-4793", NEJM),                             # linking ISSN of the real NEJM record
    ("journal", "the new england journal of medicine", NEJM),   # by title, any case
    ("journal", "N Engl J Med", NEJM),                          # by ISO abbreviation
    ("publication_type", "letter", "pubmed:1001"),
    ("language", "fre", "pubmed:1002"),
    ("mesh", "Melanoma", NEJM),
    ("keyword", "adjuvant therapy", "pubmed:1003"),
    ("phrase", "MEK inhibition", NEJM),
    ("record_id", "PMID:1003", "pubmed:1003"),
    ("record_id", "NCT02576665", TRIAL),
    ("trial_status", "terminated", TRIAL),
    ("mesh", "pancreatic cancer", TRIAL),                       # a CT.gov condition
])
def test_exclude_rule_on_each_field_hides_exactly_its_records(cur: Curation, field: str, value: str,
                                                              hidden: str) -> None:
    assert not cur.is_excluded(hidden)
    rule = cur.add_rule("lib", "exclude", field, value, "testing")
    excluded = cur.exclusions()
    assert hidden in excluded and f"rule #{rule.id}" in excluded[hidden] and "testing" in excluded[hidden]
    assert cur.verdict(hidden).source == "rule"
    cur.update_rule("lib", rule.id, active=False)
    assert not cur.is_excluded(hidden) and cur.exclusions() == {}


def test_phase_rule_and_its_loose_spelling(cur: Curation, catalog: Catalog) -> None:
    phases = catalog.get_record(TRIAL).design.phases
    assert phases, "the recorded trial has a phase"
    loose = phases[0].replace("PHASE", "phase ")
    cur.add_rule("lib", "exclude", "phase", loose, "phase out of scope")
    assert cur.is_excluded(TRIAL) and not cur.is_excluded(NEJM)


def test_include_rules_are_allow_lists_that_skip_kinds_without_the_field(cur: Curation) -> None:
    cur.add_rule("lib", "include", "language", "eng", "English only")
    assert cur.is_excluded("pubmed:1002")            # French
    assert not cur.is_excluded("pubmed:1003")
    assert not cur.is_excluded(TRIAL)                # trials have no language: not held to the list
    assert "not one of the included values" in cur.verdict("pubmed:1002").reason
    with pytest.raises(CurationError, match="approve it"):
        cur.add_rule("lib", "include", "record_id", "1003", "x")


def test_decisions_beat_rules_and_reset_returns_to_the_rules(cur: Curation) -> None:
    cur.add_rule("lib", "exclude", "publication_type", "Letter", "opinion")
    assert cur.is_excluded("pubmed:1001")
    cur.approve("lib", ["1001"])
    v = cur.verdict("pubmed:1001")
    assert not v.excluded and v.overridden_rules
    cur.exclude("lib", ["pubmed:1003"], "duplicate of a later report")
    assert cur.verdict("pubmed:1003").reason == "duplicate of a later report"
    cur.reset("lib", ["pubmed:1001", "pubmed:1003"])
    assert cur.is_excluded("pubmed:1001") and not cur.is_excluded("pubmed:1003")
    with pytest.raises(CurationError, match="reason"):
        cur.exclude("lib", ["pubmed:1003"], "  ")


def test_excluded_records_stay_in_the_catalog(cur: Curation, catalog: Catalog) -> None:
    before = catalog.stats()
    cur.exclude("lib", [NEJM], "test")
    cur.add_rule("lib", "exclude", "language", "fre", "test")
    assert catalog.stats() == before
    assert catalog.get(NEJM)["state"] == "active"


def test_visibility_flips_bump_change_seq_so_the_index_follows(cur: Curation, catalog: Catalog) -> None:
    s0 = seq(catalog, NEJM)
    cur.exclude("lib", [NEJM], "test")
    s1 = seq(catalog, NEJM)
    assert s1 > s0
    cur.tag("lib", [NEJM], "melanoma")           # no visibility change: no bump
    assert seq(catalog, NEJM) == s1
    cur.approve("lib", [NEJM])
    assert seq(catalog, NEJM) > s1
    other = seq(catalog, "pubmed:1003")
    cur.add_rule("lib", "exclude", "phrase", "nivolumab", "test")
    assert seq(catalog, "pubmed:1003") > other and seq(catalog, "pubmed:1002") < seq(catalog, "pubmed:1003")


def test_decisions_may_precede_the_record(cur: Curation, catalog: Catalog) -> None:
    report = cur.import_ids("lib", "PMID\n4242\nNCT09999999, not-an-id # comment", "exclude", "known fraud")
    assert report.applied == ["pubmed:4242", "ctgov:NCT09999999"]
    assert report.not_in_catalog == report.applied and report.invalid == ["not-an-id"]
    catalog.ingest_batch([art("4242", "Arrives later")])
    assert cur.is_excluded("pubmed:4242")
    cur.add_rule("lib", "exclude", "record_id", "5555", "pre-emptive")
    assert cur.is_excluded("pubmed:5555")


def test_ingest_hook_caches_verdicts_and_reads_stay_right_without_it(cur: Curation, catalog: Catalog) -> None:
    cur.add_rule("lib", "exclude", "phrase", "checkpoint blockade", "off topic")
    new = [art("2001", "Checkpoint blockade in renal cancer"), art("2002", "Surgery for renal cancer")]
    catalog.ingest_batch(new)
    assert cur.is_excluded("pubmed:2001"), "read-time evaluation needs no hook"
    verdicts = evaluate_batch(catalog, new)
    assert verdicts["pubmed:2001"].excluded and not verdicts["pubmed:2002"].excluded
    with catalog.engine.connect() as conn:
        cached = dict(conn.execute(select(cs.curation_verdicts.c.record_id, cs.curation_verdicts.c.excluded)
                                   .where(cs.curation_verdicts.c.record_id.in_(["pubmed:2001", "pubmed:2002"]))).all())
    assert cached == {"pubmed:2001": True, "pubmed:2002": False}
    # A revision that drops the phrase is a new version: the cached verdict is stale, not trusted.
    revised = Article(pmid="2001", title="Surgery alone in renal cancer", dates={"revised": dt.date(2026, 11, 20)})
    catalog.ingest_batch([ParsedItem(revised, b"<PubmedArticle/>", "pubmed-xml")])
    assert not cur.is_excluded("pubmed:2001")


def test_pins_tags_notes_and_the_record_view(cur: Curation) -> None:
    cur.pin("lib", NEJM, "melanoma")
    cur.pin("lib", "1003", "melanoma")
    cur.tag("lib", [NEJM], "BRAF")
    cur.note("lib", NEJM, "Pivotal trial for trametinib.")
    assert cur.pinned("melanoma") == [NEJM, "pubmed:1003"]
    view = cur.record(NEJM)
    assert view["pins"] == ["melanoma"] and view["tags"] == ["braf"]
    assert view["notes"][0]["text"] == "Pivotal trial for trametinib."
    assert [link["record_id"] for link in view["linked"]] == ["ctgov:NCT01245062"]
    assert {e["action"] for e in view["audit"]} >= {"record.pin", "record.tag", "record.note"}
    # Excluded never appears, pinned or not: excluding unpins, and an excluded record cannot be pinned.
    cur.exclude("lib", ["1003"], "superseded")
    assert cur.pinned("melanoma") == [NEJM]
    with pytest.raises(CurationError, match="approve it before pinning"):
        cur.pin("lib", "1003", "melanoma")
    cur.add_rule("lib", "exclude", "record_id", NEJM, "test")
    assert cur.pinned("melanoma") == []


def test_queue_lists_undecided_visible_records_and_sorts(cur: Curation, catalog: Catalog) -> None:
    cur.evidence = lambda record: ("1b", 2) if "Randomized Controlled Trial" in getattr(
        record, "publication_types", []) else ("5", 9)
    cur.add_rule("lib", "exclude", "language", "fre", "English and trials only")
    page = cur.queue()
    ids = [i.record_id for i in page.items]
    assert "pubmed:1002" not in ids and page.total == 4
    assert cur.queue(sort="evidence").items[0].evidence_level == "1b"
    cur.approve("lib", [NEJM])
    assert NEJM not in [i.record_id for i in cur.queue().items]
    assert cur.queue(sort="relevance").relevance_trained is False
    catalog.ingest_batch([art(str(3000 + i), f"Melanoma adjuvant trial {i}") for i in range(3)]
                         + [art(str(4000 + i), f"Dental caries survey {i}") for i in range(3)])
    cur.approve("lib", ["3000", "3001"])
    cur.exclude("lib", ["4000", "4001"], "not oncology")
    page = cur.queue(sort="relevance")
    assert page.relevance_trained
    ranked = [i.record_id for i in page.items]
    assert ranked.index("pubmed:3002") < ranked.index("pubmed:4002")


def test_changing_a_query_starts_a_new_watermark_unless_backfilled(cur: Curation, catalog: Catalog) -> None:
    cur.add_search("lib", "mel", "pubmed", "melanoma", backfill_from=dt.date(2026, 1, 1))
    catalog.set_watermark("mel", dt.date(2026, 11, 1))
    today = dt.date(2026, 11, 27)
    row = cur.update_search("lib", "mel", schedule="0 5 * * *", today=today)
    assert row["watermark"] == dt.date(2026, 11, 1), "a schedule change keeps the watermark"
    row = cur.update_search("lib", "mel", query="melanoma[mh]", today=today)
    assert row["watermark"] == today, "a new query never re-reads history silently"
    row = cur.update_search("lib", "mel", query="uveal melanoma", backfill_from=dt.date(2025, 6, 1), today=today)
    assert row["watermark"] == dt.date(2025, 6, 1)
    cur.update_search("lib", "mel", active=False)
    entries = cur.audit_log(entity="search", entity_id="mel")
    assert [e["action"] for e in entries] == ["search.pause", "search.update", "search.update", "search.update",
                                              "search.add"]
    assert entries[2]["before"]["query"] == "melanoma" and entries[2]["after"]["query"] == "melanoma[mh]"
    assert entries[2]["after"]["watermark"] == today.isoformat()
    with pytest.raises(CurationError, match="cron"):
        cur.update_search("lib", "mel", schedule="every day")
    cur.remove_search("lib", "mel")
    assert catalog.list_searches() == [] and catalog.stats()["total"]["records"] == 5


def test_preview_counts_through_the_source_client(cur: Curation, shared_data: Path, tmp_path: Path) -> None:
    from ingest.replay import ReplayServer
    from oncolit.wiring import open_source

    cur.add_search("lib", "everything", "pubmed", "all[sb]", backfill_from=dt.date(2026, 11, 2))
    pubmed_dir = tmp_path / "pubmed"
    pubmed_dir.mkdir()
    (pubmed_dir / "hoc-0001.xml.gz").symlink_to(shared_data / "pubmed" / "constructed" / "hoc-0001.xml.gz")
    with ReplayServer(pubmed_dir=pubmed_dir) as server:
        settings = Settings(data_dir=tmp_path, pubmed={"base_url": server.eutils_url, "requests_per_second": 100})
        with open_source("pubmed", settings) as source:
            whole = cur.preview_search(source, "everything", until=dt.date(2026, 11, 27))
            first_week = cur.preview_search(source, "everything", until=dt.date(2026, 11, 6))
    assert whole["window"] == ["2026-11-02", "2026-11-27"]
    assert 0 < first_week["count"] < whole["count"] <= 500


def test_roles_and_keys(cur: Curation, catalog: Catalog) -> None:
    with pytest.raises(PermissionDenied, match="reader"):
        cur.approve("rita", [NEJM])
    with pytest.raises(PermissionDenied, match="no user"):
        cur.add_rule("mallory", "exclude", "language", "fre", "x")
    with pytest.raises(PermissionDenied):
        cur.add_user("lib", "eve", "admin")
    key_id, token = cur.create_key("ada", "lib", "laptop")
    assert token.startswith(f"olk_{key_id}_")
    user, found_id = cur.authenticate(token)
    assert (user.name, user.role, found_id) == ("lib", "librarian", key_id)
    assert cur.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert cur.authenticate("olk_nothex_" + "x" * 43) is None and cur.authenticate(None) is None
    with catalog.engine.connect() as conn:
        dump = "\n".join(str(tuple(r)) for table in cs.TABLES for r in conn.execute(select(table)))
    assert token not in dump and token.split("_", 2)[2] not in dump, "keys are stored hashed only"
    cur.set_user("ada", "lib", role="reader")
    assert cur.authenticate(token)[0].role == "reader"
    cur.set_user("ada", "lib", active=False)
    assert cur.authenticate(token) is None
    cur.set_user("ada", "lib", active=True)
    cur.revoke_key("ada", key_id)
    assert cur.authenticate(token) is None
    with pytest.raises(CurationError, match="last active admin"):
        cur.set_user("ada", "ada", role="librarian")


def test_first_user_must_be_an_admin(catalog: Catalog) -> None:
    c = Curation(catalog)
    with pytest.raises(CurationError, match="first user"):
        c.add_user("me", "me", "librarian")
    c.add_user("me", "me", "admin")
    assert c.user("me").role == "admin"


def test_audit_log_is_append_only_and_exportable(cur: Curation, catalog: Catalog) -> None:
    cur.exclude("lib", [NEJM], "test")
    with pytest.raises(DatabaseError, match="append-only"):
        with catalog.engine.begin() as conn:
            conn.execute(update(cs.curation_audit).values(actor="someone else"))
    with pytest.raises(DatabaseError, match="append-only"):
        with catalog.engine.begin() as conn:
            conn.execute(text("DELETE FROM curation_audit"))
    jsonl = cur.export_audit("jsonl").splitlines()
    assert len(jsonl) == len(cur.audit_log(limit=None)) and '"record.exclude"' in jsonl[-1]
    csv_text = cur.export_audit("csv")
    assert csv_text.startswith("id,at,actor,action,entity,entity_id,before,after")
    assert "key." not in csv_text or "olk_" not in csv_text
