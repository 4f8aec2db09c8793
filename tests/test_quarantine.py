"""Poison records are quarantined, not fatal (issue 18, item 2).

A `<PubDate><Year>` of 0 or 99999 used to raise a bare ValueError out of `PartialDate.as_date`
while the catalog described the record: 0 of the batch was stored, and every rerun failed the same
way because upstream keeps sending the record. Now the record is kept raw with its error, the
rest of the window is stored, the run reports it, `records stats` counts it, the watermark moves
(the record is kept and retried, see ingest/quarantine.py) and a corrected revision resolves it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from ingest.catalog import Catalog
from ingest.errors import InvalidRecord
from ingest.pubmed_xml import iter_pubmed_file, parse_pubmed_xml
from ingest.quarantine import retry_quarantine
from ingest.records.common import PartialDate
from ingest.replay import ReplayServer
from tests.helpers import pubmed_env, run_cli

SINCE, UNTIL = "2026-11-02", "2026-11-27"
PUBDATE = re.compile(rb"<PubDate>.*?</PubDate>", re.DOTALL)


def _with_year(raw: bytes, year: str) -> bytes:
    poisoned, n = PUBDATE.subn(b"<PubDate><Year>" + year.encode() + b"</Year><Month>Jul</Month></PubDate>", raw,
                               count=1)
    assert n == 1, "the record must have a PubDate to poison"
    return poisoned


def _article_set(*records: bytes) -> bytes:
    return b'<?xml version="1.0" ?>\n<PubmedArticleSet>' + b"".join(records) + b"</PubmedArticleSet>\n"


@pytest.fixture(scope="module")
def recorded(shared_data: Path) -> list:
    items = [i for i in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "hoc-0004.xml.gz")
             if PUBDATE.search(i.raw)]
    assert len(items) > 20
    return items


def test_impossible_year_is_a_typed_error_not_a_bare_valueerror() -> None:
    for year in (0, 99999):
        with pytest.raises(InvalidRecord, match=f"year {year}"):
            PartialDate(year=year, month=7).as_date()
    assert PartialDate(year=2012, month=2, day=31).as_date().isoformat() == "2012-01-01"  # lenient as before


def test_poison_records_are_quarantined_and_the_rest_of_the_batch_is_stored(recorded: list, tmp_path: Path) -> None:
    good = recorded[:10]
    poison = [parse_pubmed_xml(_article_set(_with_year(recorded[10].raw, "0")))[0],
              parse_pubmed_xml(_article_set(_with_year(recorded[11].raw, "99999")))[0]]
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        outcome = catalog.ingest([*good[:5], *poison, *good[5:]])
        assert dict(outcome.counts) == {"new": 10, "quarantined": 2}
        poison_ids = [p.record.record_id for p in poison]
        assert [q.record_id for q in outcome.quarantined] == poison_ids
        assert all("year" in q.error and "outside" in q.error for q in outcome.quarantined)
        assert not any(catalog.exists(rid) for rid in poison_ids)
        assert all(catalog.exists(i.record.record_id) for i in good)
        # Kept raw, byte for byte, with the error: a parser fix can re-derive them.
        assert catalog.quarantined_raw(poison_ids[0]) == (poison[0].raw, "pubmed-xml")
        stats = catalog.stats()
        assert stats["quarantined"] == {"total": 2, "by_source": {"pubmed": 2}}
        assert stats["total"]["records"] == 10
        # Retried with today's code: still impossible, so still kept, one attempt more.
        retried = retry_quarantine(catalog, "pubmed")
        assert retried.retried == 2 and sorted(retried.still_quarantined) == sorted(poison_ids)
        assert [e.attempts for e in catalog.quarantine()] == [2, 2]
        # The source sends a corrected revision of one of them: stored, and out of the quarantine.
        fixed = catalog.ingest([recorded[10]])
        assert dict(fixed.counts) == {"new": 1} and catalog.exists(poison_ids[0])
        assert [e.record_id for e in catalog.quarantine()] == [poison_ids[1]]


def test_poison_record_in_a_window_does_not_block_it(recorded: list, shared_data: Path, tmp_path: Path,
                                                    isolated_env: Path) -> None:
    """Through the real CLI, PubMed client and replay server: the poison record is a later revision
    of a record in the window (upstream keeps sending it), the rest of the window is ingested."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(shared_data / "pubmed" / "constructed" / "hoc-0004.xml.gz", corpus)
    victims = [recorded[3], recorded[7]]
    (corpus / "zz-poison.xml").write_bytes(_article_set(_with_year(victims[0].raw, "0"),
                                                        _with_year(victims[1].raw, "99999")))
    victim_ids = sorted(v.record.record_id for v in victims)
    with ReplayServer(pubmed_dir=corpus) as server:
        env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="50")
        run_cli("searches", "add", "everything", "--query", "all[sb]", "--since", SINCE, env=env)
        proc = run_cli("ingest", "pubmed", "--search", "everything", "--until", UNTIL, "--json", env=env, check=False)
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("partial: pubmed everything: committed new ")
        assert "2 records quarantined" in proc.stderr and "records quarantine" in proc.stderr
        [summary] = json.loads(proc.stdout)
        assert summary["status"] == "partial"
        assert sorted(q["record_id"] for q in summary["quarantined"]) == victim_ids
        assert summary["counts"]["quarantined"] == 2 and summary["counts"]["new"] > 20
        assert summary["watermark_after"] == UNTIL, "a quarantined record is kept: the window is done"
        stats = json.loads(run_cli("records", "stats", "--json").stdout)
        assert stats["quarantined"]["total"] == 2
        assert stats["total"]["records"] == summary["counts"]["new"]
        listed = json.loads(run_cli("records", "quarantine", "--json").stdout)
        assert sorted(e["record_id"] for e in listed) == victim_ids and all(e["error"] for e in listed)
        assert "quarantined 2 records" in run_cli("records", "stats").stdout
        # The rerun (upstream sends the same bad bytes again) neither fails nor duplicates anything.
        proc = run_cli("ingest", "pubmed", "--search", "everything", "--until", UNTIL, "--json", env=env, check=False)
        assert proc.returncode == 3, proc.stderr
        [again] = json.loads(proc.stdout)
        assert again["status"] == "partial" and set(again["counts"]) == {"unchanged", "quarantined"}
        assert again["quarantine_retry"]["retried"] == 2
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        assert catalog.stats()["quarantined"]["total"] == 2
        assert catalog.runs(1)[0]["status"] == "partial" and "quarantined" in catalog.runs(1)[0]["error"]


def test_ctgov_study_with_an_impossible_date_is_quarantined_and_retried(shared_data: Path, tmp_path: Path) -> None:
    from ingest.ctgov_json import iter_ctgov_path
    from ingest.pipeline import run_files

    studies = shared_data / "ctgov" / "real" / "biomcp"
    poisoned = json.loads((studies / "get_nct06382129_20260811.json").read_text())
    poisoned["protocolSection"]["statusModule"]["startDateStruct"]["date"] = "0000-07"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(poisoned))
    good = studies / "get_nct06604689_20260811.json"
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        first = run_files(catalog, "ctgov", [bad, good], iter_ctgov_path)
        assert first.status == "partial" and [q.record_id for q in first.quarantined] == ["ctgov:NCT06382129"]
        assert dict(first.counts) == {"new": 1, "quarantined": 1} and catalog.exists("ctgov:NCT06604689")
        # The next run re-parses the kept JSON (the ctgov-json path of the retry) and keeps it.
        second = run_files(catalog, "ctgov", [good], iter_ctgov_path)
        assert second.status == "ok" and second.quarantine_retry.still_quarantined == ["ctgov:NCT06382129"]
        assert catalog.quarantine()[0].attempts == 2
        # The registry corrects the date: the study is stored and leaves the quarantine.
        third = run_files(catalog, "ctgov", [studies / "get_nct06382129_20260811.json"], iter_ctgov_path)
        assert third.status == "ok" and catalog.exists("ctgov:NCT06382129") and catalog.quarantine() == []


def test_an_article_without_an_identity_is_quarantined_by_its_bytes(recorded: list, tmp_path: Path) -> None:
    """No PMID (or one that is not a number): the parser hands the catalog an `Unreadable` item instead of
    failing the payload, so the good articles beside it are stored; the retry keeps it, once."""
    nopmid = re.sub(rb"<PMID[^>]*>\d+</PMID>", b"", recorded[12].raw, count=1)
    badpmid = re.sub(rb"(<PMID[^>]*>)\d+(</PMID>)", rb"\g<1>12ab\g<2>", recorded[13].raw, count=1)
    items = parse_pubmed_xml(_article_set(recorded[0].raw, nopmid, badpmid, recorded[1].raw))
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        outcome = catalog.ingest(items)
        assert dict(outcome.counts) == {"new": 2, "quarantined": 2}
        assert all(q.record_id.startswith("pubmed:unreadable-") for q in outcome.quarantined)
        assert "has no PMID" in outcome.quarantined[0].error and "invalid PMID" in outcome.quarantined[1].error
        assert catalog.stats()["quarantined"]["by_source"] == {"pubmed": 2}
        retried = retry_quarantine(catalog, "pubmed")
        assert retried.retried == 2 and len(retried.still_quarantined) == 2 and len(catalog.quarantine()) == 2
        assert catalog.ingest(items).counts["quarantined"] == 2 and len(catalog.quarantine()) == 2
