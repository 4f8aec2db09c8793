"""PubMedSource against the replay server: the right PMIDs in batches, revisions, and every failure mode.

Nothing of ours is mocked: the source speaks HTTP to a real local server. Only `sleep` is injected,
so back-off and Retry-After waits are recorded instead of slept.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import socket
from pathlib import Path

import pytest
from lxml import etree

from ingest.errors import SourceRequestError, SourceUnavailable
from ingest.pubmed import PubMedSource
from ingest.records import Article
from ingest.replay import ReplayServer
from ingest.replay_faults import (
    Fault,
    FaultPlan,
    billion_laughs,
    delay,
    drop_records,
    malformed,
    status,
    truncate,
    xxe,
)
from ingest.source import Batch, Query, Source, Window
from oncolit.settings import PubMedSettings, RetrySettings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "replay"
WINDOW = Window(dt.date(2026, 11, 2), dt.date(2026, 11, 4))  # a Monday to Wednesday: 357 records
BATCH = 100


@pytest.fixture(scope="module")
def pubmed_dir(shared_data: Path) -> Path:
    return shared_data / "pubmed" / "constructed"


@pytest.fixture(scope="module")
def entrez_dates(pubmed_dir: Path) -> dict[str, dt.date]:
    """PMID -> entrez date, read straight from the files (independently of server and source)."""
    dates: dict[str, dt.date] = {}
    for path in sorted(pubmed_dir.glob("*.xml.gz")):
        for article in etree.fromstring(gzip.decompress(path.read_bytes())).iter("PubmedArticle"):
            node = article.find("PubmedData/History/PubMedPubDate[@PubStatus='entrez']")
            dates[article.findtext("MedlineCitation/PMID")] = dt.date(
                int(node.findtext("Year")), int(node.findtext("Month")), int(node.findtext("Day")))
    return dates


@pytest.fixture(scope="module")
def replay(pubmed_dir: Path):
    with ReplayServer(pubmed_dir, None) as server:
        yield server


@pytest.fixture
def plan(replay: ReplayServer) -> FaultPlan:
    """A fresh fault plan on the shared server for each test."""
    replay.faults = FaultPlan()
    yield replay.faults
    replay.faults = FaultPlan()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_source(base_url: str, sleeps: list[float], *, max_attempts: int = 3, timeout: float = 5.0,
                **overrides) -> PubMedSource:
    settings = PubMedSettings(base_url=base_url, batch_size=BATCH, requests_per_second=1000.0,
                              retry=RetrySettings(max_attempts=max_attempts, backoff_base=0.5, timeout=timeout),
                              **overrides)
    return PubMedSource(settings, sleep=sleeps.append)


def expected_in(dates: dict[str, dt.date], window: Window) -> set[str]:
    return {pmid for pmid, day in dates.items() if window.start <= day <= window.end}


def collect(source: PubMedSource, window: Window = WINDOW, text: str = "") -> tuple[list[str], list[Batch]]:
    batches = list(source.fetch_changes(Query(text), window))
    return [item.record.pmid for batch in batches for item in batch.items], batches


# --- the happy path ----------------------------------------------------------------------------

def test_fetch_changes_returns_exactly_the_window_in_batches(replay, plan, sleeps, entrez_dates):
    source = make_source(replay.eutils_url, sleeps)
    assert isinstance(source, Source) and source.name == "pubmed"

    pmids, batches = collect(source)

    expected = expected_in(entrez_dates, WINDOW)
    assert len(expected) == 357
    assert len(pmids) == len(set(pmids)) and set(pmids) == expected
    assert all(len(b.items) <= BATCH for b in batches) and len(batches) == 4
    assert all(isinstance(i.record, Article) and i.raw_format == "pubmed-xml" and i.raw.startswith(b"<PubmedArticle")
               for b in batches for i in b.items)
    assert [b.info["retstart"] for b in batches] == [0, 100, 200, 300]
    assert all(b.info["missing"] == [] and b.info["datetype"] == "edat" for b in batches)
    # edat then mdat; the mdat set holds nothing new, so its slices are skipped without an efetch.
    assert [s.params["datetype"] for s in plan.seen("esearch")] == ["edat", "mdat"]
    assert plan.count("efetch") == 4
    assert source.count(Query(""), WINDOW) == 357


def test_every_request_identifies_the_tool_and_uses_history(replay, plan, sleeps):
    source = make_source(replay.eutils_url, sleeps, email="lib@example.org", tool="oncolit-test",
                         api_key="k3y")
    collect(source, Window(dt.date(2026, 11, 2), dt.date(2026, 11, 2)))
    for seen in plan.seen():
        assert (seen.params["email"], seen.params["tool"], seen.params["api_key"]) == (
            "lib@example.org", "oncolit-test", "k3y")
    fetch = plan.seen("efetch")[0].params
    assert fetch["WebEnv"].startswith("MCID_") and fetch["query_key"] == "1" and fetch["retmax"] == str(BATCH)


def test_query_text_narrows_the_search(replay, plan, sleeps, entrez_dates):
    pmids, batches = collect(make_source(replay.eutils_url, sleeps), text="tumor OR carcinoma")
    assert 0 < len(pmids) < len(expected_in(entrez_dates, WINDOW))
    assert set(pmids) <= expected_in(entrez_dates, WINDOW)
    for item in (i for b in batches for i in b.items):
        record = item.record
        words = " ".join([record.title, *(s.text for s in record.abstract),
                          *(m.descriptor for m in record.mesh_headings)]).lower()
        assert "tumor" in words or "carcinoma" in words


def test_revisions_come_back_through_the_modification_date(tmp_path, pubmed_dir, sleeps):
    """The fixture update revises 11724768 (entered 2026-11-20) on 2026-12-01 and deletes 11742853."""
    folder = tmp_path / "pubmed"
    folder.mkdir()
    for path in pubmed_dir.glob("*.xml.gz"):
        (folder / path.name).symlink_to(path)
    (folder / "update-0001.xml").symlink_to(FIXTURES / "update-0001.xml")
    with ReplayServer(folder, None) as server:
        source = make_source(server.eutils_url, sleeps)
        pmids, batches = collect(source, Window(dt.date(2026, 12, 1), dt.date(2026, 12, 1)))
        assert pmids == ["11724768"]
        assert batches[0].info["datetype"] == "mdat"
        assert batches[0].items[0].record.title.startswith("Replay fixture: a revised record")

        across, _ = collect(source, Window(dt.date(2026, 11, 20), dt.date(2026, 12, 1)))
        assert across.count("11724768") == 1 and "11742853" not in across


def test_windows_too_big_for_one_esearch_are_split_by_day(pubmed_dir, sleeps, entrez_dates):
    with ReplayServer(pubmed_dir, None, esearch_id_limit=150) as server:
        pmids, _ = collect(make_source(server.eutils_url, sleeps))
        assert len(pmids) == len(set(pmids)) and set(pmids) == expected_in(entrez_dates, WINDOW)
        windows = [(s.params["mindate"], s.params["maxdate"]) for s in server.faults.seen("esearch")
                   if s.params["datetype"] == "edat"]
        assert windows[0] == ("2026/11/02", "2026/11/04") and ("2026/11/04", "2026/11/04") in windows


def test_a_single_day_over_the_esearch_cap_is_still_fetched_whole(pubmed_dir, sleeps, entrez_dates):
    day = Window(dt.date(2026, 11, 2), dt.date(2026, 11, 2))
    with ReplayServer(pubmed_dir, None, esearch_id_limit=30) as server:
        pmids, _ = collect(make_source(server.eutils_url, sleeps), day)
        assert sorted(pmids) == sorted(expected_in(entrez_dates, day))


# --- transient faults are retried to success ---------------------------------------------------

TRANSIENT: list[tuple[str, str, Fault]] = [
    ("esearch-429", "esearch", status(429, retry_after=7)),
    ("esearch-503", "esearch", status(503)),
    ("efetch-500", "efetch", status(500)),
    ("efetch-timeout", "efetch", delay(3.0)),
    ("efetch-truncated", "efetch", truncate(0.6)),
    ("efetch-truncated-honest-length", "efetch", truncate(0.6, keep_length=False)),
    ("efetch-malformed", "efetch", malformed()),
    ("efetch-billion-laughs", "efetch", billion_laughs()),
    ("efetch-xxe", "efetch", xxe()),
    ("esearch-malformed", "esearch", malformed()),
    ("esearch-xxe", "esearch", xxe()),
]


@pytest.mark.parametrize(("prefix", "fault"), [t[1:] for t in TRANSIENT], ids=[t[0] for t in TRANSIENT])
def test_transient_faults_are_retried_to_success(replay, plan, sleeps, entrez_dates, prefix, fault):
    plan.on_request(prefix, 1, fault)
    source = make_source(replay.eutils_url, sleeps, timeout=0.5)

    pmids, batches = collect(source)

    assert len(pmids) == len(set(pmids)) and set(pmids) == expected_in(entrez_dates, WINDOW)
    assert plan.pending() == 0
    assert plan.count(prefix) == {"esearch": 3, "efetch": 5}[prefix]  # one request more than without the fault
    assert b"root:" not in b"".join(i.raw for b in batches for i in b.items)  # no /etc/passwd leaked in
    assert 0.5 in sleeps or 7.0 in sleeps  # the first back-off, or Retry-After


def test_retry_after_is_honoured(replay, plan, sleeps):
    plan.add("efetch", status(429, retry_after=4), status(429, retry_after=2))
    collect(make_source(replay.eutils_url, sleeps), Window(dt.date(2026, 11, 2), dt.date(2026, 11, 2)))
    waits = [s for s in sleeps if s >= 0.1]  # the rate limiter's own waits are milliseconds
    assert waits == [4.0, 2.0]


def test_short_batches_are_completed_by_asking_for_the_missing_pmids(replay, plan, sleeps, entrez_dates):
    plan.on_request("efetch", 2, drop_records(3))
    pmids, batches = collect(make_source(replay.eutils_url, sleeps))
    assert set(pmids) == expected_in(entrez_dates, WINDOW) and len(pmids) == len(set(pmids))
    refetch = plan.seen("efetch")[2].params
    assert "id" in refetch and len(refetch["id"].split(",")) == 3
    assert batches[1].info["received"] == BATCH and batches[1].info["missing"] == []


def test_pmids_that_never_arrive_are_logged_and_reported(replay, plan, sleeps, entrez_dates, caplog):
    plan.always("efetch", drop_records(1))
    day = Window(dt.date(2026, 11, 3), dt.date(2026, 11, 3))
    with caplog.at_level(logging.WARNING, logger="ingest.pubmed"):
        pmids, batches = collect(make_source(replay.eutils_url, sleeps), day)
    missing = [p for b in batches for p in b.info["missing"]]
    expected = expected_in(entrez_dates, day)
    assert len(missing) == 2 and set(pmids) | set(missing) == expected  # one lost from each of 2 batches
    assert all(p in caplog.text for p in missing) and "still lacks" in caplog.text


# --- persistent faults and refusals ------------------------------------------------------------

@pytest.mark.parametrize("fault", [status(503), status(429, retry_after=1), xxe(), truncate(0.3), delay(3.0)],
                         ids=["503", "429", "xxe", "truncated", "timeout"])
def test_persistent_faults_end_in_source_unavailable(replay, plan, sleeps, fault):
    plan.always("efetch", fault)
    source = make_source(replay.eutils_url, sleeps, timeout=0.5)
    with pytest.raises(SourceUnavailable, match=r"efetch .* failed after 3 attempts"):
        collect(source)
    assert plan.count("efetch") == 3


def test_a_refused_request_is_not_retried(replay, plan, sleeps):
    plan.always("efetch", status(400, body=b"<eFetchResult><ERROR>Invalid query_key</ERROR></eFetchResult>"))
    with pytest.raises(SourceRequestError, match="Invalid query_key"):
        collect(make_source(replay.eutils_url, sleeps))
    assert plan.count("efetch") == 1


def test_a_query_the_server_cannot_run_is_a_request_error(replay, plan, sleeps):
    with pytest.raises(SourceRequestError, match=r"unsupported field tag \[journal\]"):
        collect(make_source(replay.eutils_url, sleeps), text="melanoma[journal]")
    assert plan.count("esearch") == 1


def test_nothing_listening_ends_in_source_unavailable(sleeps):
    with socket.socket() as probe:  # a port that was free a moment ago: connection refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = make_source(f"http://127.0.0.1:{port}/entrez/eutils/", sleeps)
    with pytest.raises(SourceUnavailable, match="esearch .* failed after 3 attempts"):
        source.count(Query(""), WINDOW)
    assert [s for s in sleeps if s >= 0.1] == [0.5, 1.0]  # exponential back-off between the tries
