"""The replay server answers like NCBI E-utilities and ClinicalTrials.gov API v2, and misbehaves on demand.

Format fidelity is checked two ways: the prolog is compared with real recorded responses, and the
answers are read back with Biopython's own validating parser (`Bio.Entrez.read`).
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import io
import json
import threading
import urllib.request
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest
from Bio import Entrez
from lxml import etree

from ingest.replay import ReplayServer, serve
from ingest.replay_faults import (
    FaultPlan,
    bad_json,
    billion_laughs,
    delay,
    drop_records,
    malformed,
    status,
    truncate,
    xxe,
)

TIMEOUT = 10
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "replay"


# --- helpers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pubmed_dir(shared_data: Path) -> Path:
    return shared_data / "pubmed" / "constructed"


@pytest.fixture(scope="module")
def ctgov_dir(shared_data: Path) -> Path:
    return shared_data / "ctgov" / "real"


@pytest.fixture(scope="module")
def entrez_dates(pubmed_dir: Path) -> dict[str, dt.date]:
    """PMID -> entrez date, read straight from the files (independently of the server's code)."""
    dates: dict[str, dt.date] = {}
    for path in sorted(pubmed_dir.glob("*.xml.gz")):
        root = etree.fromstring(gzip.decompress(path.read_bytes()))
        for article in root.iter("PubmedArticle"):
            node = article.find("PubmedData/History/PubMedPubDate[@PubStatus='entrez']")
            dates[article.findtext("MedlineCitation/PMID")] = dt.date(
                int(node.findtext("Year")), int(node.findtext("Month")), int(node.findtext("Day")))
    return dates


@pytest.fixture(scope="module")
def server(pubmed_dir: Path, ctgov_dir: Path):
    with ReplayServer(pubmed_dir, ctgov_dir) as running:
        yield running


def get(url: str, **params: str) -> tuple[int, dict[str, str], bytes]:
    full = url + ("?" + urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(full, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def entrez(server: ReplayServer, cgi: str, **params: str) -> urllib.request.Request:
    """A request exactly as Biopython builds it, pointed at the replay server."""
    params.setdefault("email", "tests@example.org")
    return Entrez._build_request(server.eutils_url + cgi, params)


def real_prolog(shared_data: Path, name: str, lines: int) -> list[bytes]:
    return (shared_data / "pubmed" / "real" / "biopython" / "entrez" / name).read_bytes().split(b"\n")[:lines]


def in_window(dates: dict[str, dt.date], start: dt.date, end: dt.date) -> set[str]:
    return {pmid for pmid, day in dates.items() if start <= day <= end}


# --- esearch -----------------------------------------------------------------------------------

def test_esearch_window_matches_entrez_dates_in_the_real_format(server, shared_data, entrez_dates):
    start, end = dt.date(2026, 11, 2), dt.date(2026, 11, 4)
    expected = in_window(entrez_dates, start, end)
    request = entrez(server, "esearch.fcgi", db="pubmed", term="all[sb]", datetype="edat",
                     mindate="2026/11/02", maxdate="2026/11/04", retmax="10000", usehistory="y")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        assert response.headers["Content-Type"].startswith("text/xml")
        body = response.read()

    assert body.split(b"\n")[:2] == real_prolog(shared_data, "esearch2.xml", 2)
    record = Entrez.read(_bytes_handle(body))  # Biopython validates against esearch.dtd
    assert int(record["Count"]) == len(expected) == len(record["IdList"])
    assert set(record["IdList"]) == expected
    assert [int(i) for i in record["IdList"]] == sorted((int(i) for i in expected), reverse=True)
    assert record["WebEnv"].startswith("MCID_") and record["QueryKey"] == "1"


def test_esearch_paging_and_retmax_as_ncbi_reports_them(server, entrez_dates):
    everything = sorted(entrez_dates, key=int, reverse=True)
    _, _, body = get(server.eutils_url + "esearch.fcgi", db="pubmed", term="", retstart="5", retmax="7")
    record = Entrez.read(_bytes_handle(body))
    assert record["Count"] == str(len(everything))
    assert (record["RetStart"], record["RetMax"]) == ("5", "7")
    assert record["IdList"] == everything[5:12]


def test_esearch_zero_hits_has_empty_idlist_and_warning(server):
    _, _, body = get(server.eutils_url + "esearch.fcgi", db="pubmed", term="zzzqqqnotaword")
    assert b"<IdList/>" in body
    record = Entrez.read(_bytes_handle(body))
    assert record["Count"] == "0" and record["IdList"] == []
    assert record["WarningList"]["OutputMessage"] == ["No items found."]


def test_term_grammar_words_prefix_phrase_fields(server):
    def count(term: str, **extra: str) -> int:
        _, _, body = get(server.eutils_url + "esearch.fcgi", db="pubmed", term=term, retmax="0", **extra)
        return int(Entrez.read(_bytes_handle(body))["Count"])

    everything = count("")
    assert count("all[sb]") == everything
    assert 0 < count("apoptosis") < everything
    assert count("APOPTOSIS") == count("apoptosis")                     # case-insensitive
    assert count("apoptosis*") >= count("apoptosis")                    # truncation widens
    assert count("apoptosis AND tumor") == count("apoptosis tumor")     # AND explicit or implied
    assert count("apoptosis tumor") <= min(count("apoptosis"), count("tumor"))
    assert 0 < count('"breast cancer"') <= count("breast cancer")       # phrase narrows
    assert count("appendicitis[mh]") > 0 and count("appendicitis[ti]") <= count("appendicitis[tiab]")
    assert count("appendicitis[MeSH Terms]") == count("appendicitis[mh]")
    either = count("apoptosis OR melanoma")
    assert either == count("apoptosis") + count("melanoma") - count("apoptosis AND melanoma")
    assert count("apoptosis NOT melanoma") == count("apoptosis") - count("apoptosis melanoma")
    # left to right, like PubMed: (a OR b) AND c, unless parentheses say otherwise
    assert count("apoptosis OR melanoma AND tumor") == count("(apoptosis OR melanoma) tumor")
    assert count("apoptosis OR (melanoma AND tumor)") >= count("apoptosis")


@pytest.mark.parametrize("term", ["cancer OR", "NOT", "(cancer", "cancer)", "cancer[journal]", "review[sb]",
                                  "(cancer)[tiab]"])
def test_unsupported_term_syntax_is_refused_with_400(server, term):
    code, _, body = get(server.eutils_url + "esearch.fcgi", db="pubmed", term=term)
    assert code == 400 and b"<ERROR>" in body


def test_esearch_date_types_and_partial_dates(server, entrez_dates):
    def count(**extra: str) -> int:
        _, _, body = get(server.eutils_url + "esearch.fcgi", db="pubmed", term="", retmax="0", **extra)
        return int(Entrez.read(_bytes_handle(body))["Count"])

    november = count(datetype="edat", mindate="2026/11", maxdate="2026/11")
    assert november == len(entrez_dates)  # every constructed entrez date is in Nov 2026
    assert count(datetype="mdat", mindate="2026/11/02", maxdate="2026/11/02") == len(
        in_window(entrez_dates, dt.date(2026, 11, 2), dt.date(2026, 11, 2)))  # no DateRevised: mdat = edat
    assert count(datetype="pdat", mindate="2026", maxdate="2026") == 0   # publication years are real, older
    assert count(datetype="edat", mindate="2026/11/28") == 0            # open-ended range


# --- efetch ------------------------------------------------------------------------------------

def test_efetch_by_ids_returns_exact_bytes_in_the_real_layout(server, shared_data, pubmed_dir):
    source = gzip.decompress((pubmed_dir / "pubmedqa-dev-0001.xml.gz").read_bytes())
    first_two = etree.fromstring(source).findall("PubmedArticle")[:2]
    pmids = [a.findtext("MedlineCitation/PMID") for a in first_two]

    request = entrez(server, "efetch.fcgi", db="pubmed", id=[pmids[1], "1", pmids[0]], retmode="xml")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        body = response.read()

    assert body.split(b"\n")[:3] == real_prolog(shared_data, "pubmed2.xml", 3)
    assert body.endswith(b"</PubmedArticle></PubmedArticleSet>")
    articles = Entrez.read(_bytes_handle(body))["PubmedArticle"]
    assert [str(a["MedlineCitation"]["PMID"]) for a in articles] == [pmids[1], pmids[0]]  # "1" silently absent
    for pmid in pmids:  # each record is served byte-for-byte as it sits in the file
        start = source.rindex(b"<PubmedArticle>", 0, source.index(b'<PMID Version="1">' + pmid.encode() + b"<"))
        original = source[start:source.index(b"</PubmedArticle>", start) + len(b"</PubmedArticle>")]
        assert original in body


def test_efetch_through_history_pages_with_retstart_and_retmax(server):
    _, _, body = get(server.eutils_url + "esearch.fcgi", db="pubmed", term="tumor", usehistory="y", retmax="10000")
    search = Entrez.read(_bytes_handle(body))
    listed = list(search["IdList"])
    fetched: list[str] = []
    for retstart in range(0, int(search["Count"]), 40):
        _, _, page = get(server.eutils_url + "efetch.fcgi", db="pubmed", retmode="xml", WebEnv=search["WebEnv"],
                         query_key=search["QueryKey"], retstart=str(retstart), retmax="40")
        fetched += [str(a["MedlineCitation"]["PMID"]) for a in Entrez.read(_bytes_handle(page))["PubmedArticle"]]
    assert fetched == listed


def test_history_keys_accumulate_in_one_webenv(server):
    _, _, first = get(server.eutils_url + "esearch.fcgi", db="pubmed", term="tumor", usehistory="y")
    webenv = Entrez.read(_bytes_handle(first))["WebEnv"]
    _, _, second = get(server.eutils_url + "esearch.fcgi", db="pubmed", term="apoptosis", usehistory="y",
                       WebEnv=webenv)
    record = Entrez.read(_bytes_handle(second))
    assert record["WebEnv"] == webenv and record["QueryKey"] == "2"
    _, _, page = get(server.eutils_url + "efetch.fcgi", db="pubmed", WebEnv=webenv, query_key="2", retmax="3")
    assert [str(a["MedlineCitation"]["PMID"]) for a in Entrez.read(_bytes_handle(page))["PubmedArticle"]] == \
        list(record["IdList"][:3])


def test_unknown_history_is_a_400_like_ncbi(server):
    code, _, body = get(server.eutils_url + "efetch.fcgi", db="pubmed", WebEnv="MCID_nope", query_key="1")
    assert code == 400 and b"Cannot retrieve history data" in body


def test_long_id_lists_are_posted_by_biopython_and_answered(server, entrez_dates):
    pmids = sorted(entrez_dates)[:250]
    request = entrez(server, "efetch.fcgi", db="pubmed", id=pmids, retmode="xml")
    assert request.get_method() == "POST"
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        articles = Entrez.read(response)["PubmedArticle"]
    assert sorted(str(a["MedlineCitation"]["PMID"]) for a in articles) == pmids


def test_other_databases_are_refused(server):
    code, _, _ = get(server.eutils_url + "efetch.fcgi", db="nucleotide", id="1")
    assert code == 400


# --- revisions and deletions -------------------------------------------------------------------

def test_later_file_revises_and_deletes_records(tmp_path, pubmed_dir, entrez_dates):
    """update-0001.xml sorts after the shared files: it revises 11724768 and deletes 11742853."""
    revised, deleted = "11724768", "11742853"
    assert {revised, deleted} <= set(entrez_dates)
    with ReplayServer(linked_with_update(tmp_path, pubmed_dir), None) as replay:
        _, _, body = get(replay.eutils_url + "efetch.fcgi", db="pubmed", id=f"{revised},{deleted}")
        articles = Entrez.read(_bytes_handle(body))["PubmedArticle"]
        assert [str(a["MedlineCitation"]["PMID"]) for a in articles] == [revised]
        assert str(articles[0]["MedlineCitation"]["Article"]["ArticleTitle"]).startswith("Replay fixture: a revised")
        _, _, found = get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="", datetype="mdat",
                          mindate="2026/12/01", maxdate="2026/12/01")
        assert list(Entrez.read(_bytes_handle(found))["IdList"]) == [revised]
        _, _, entered = get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="", datetype="edat",
                            mindate="2026/11/20", maxdate="2026/11/24", retmax="10000")
        ids = set(Entrez.read(_bytes_handle(entered))["IdList"])
        assert revised in ids and deleted not in ids


def linked_with_update(tmp_path: Path, pubmed_dir: Path) -> Path:
    """The shared files (symlinked, never copied) plus the hand-written update file, in one folder."""
    folder = tmp_path / "pubmed"
    folder.mkdir()
    for path in pubmed_dir.glob("*.xml.gz"):
        (folder / path.name).symlink_to(path)
    (folder / "update-0001.xml").symlink_to(FIXTURES / "update-0001.xml")
    return folder


def test_esearch_id_limit_is_enforced_like_pubmed(pubmed_dir):
    """PubMed lists at most 10,000 ids per esearch; the replay can lower that cap to exercise clients."""
    with ReplayServer(pubmed_dir, None, esearch_id_limit=50) as replay:
        _, _, body = get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="", retmax="10000")
        record = Entrez.read(_bytes_handle(body))
        assert int(record["Count"]) > 50 and len(record["IdList"]) == 50


# --- CT.gov ------------------------------------------------------------------------------------

def test_ctgov_pages_chain_through_next_page_tokens(server):
    seen: list[dict] = []
    status_code, _, body = get(server.ctgov_url + "studies", pageSize="5", countTotal="true")
    page = json.loads(body)
    assert status_code == 200 and page["totalCount"] >= 20
    total = page["totalCount"]
    while True:
        seen += page["studies"]
        assert len(page["studies"]) <= 5
        if "nextPageToken" not in page:
            break
        status_code, _, body = get(server.ctgov_url + "studies", pageSize="5", countTotal="true",
                                   pageToken=page["nextPageToken"])
        page = json.loads(body)
        assert "totalCount" not in page  # the live API counts on the first page only
    ids = [s["protocolSection"]["identificationModule"]["nctId"] for s in seen]
    assert len(ids) == len(set(ids)) == total
    keys = [(s["protocolSection"].get("statusModule", {}).get("lastUpdatePostDateStruct", {}).get("date", ""),
             s["protocolSection"]["identificationModule"]["nctId"]) for s in seen]
    assert keys == sorted(keys)


def test_ctgov_filters_condition_term_and_update_date_range(server):
    def nct_ids(**params: str) -> list[str]:
        _, _, body = get(server.ctgov_url + "studies", pageSize="1000", **params)
        return [s["protocolSection"]["identificationModule"]["nctId"] for s in json.loads(body)["studies"]]

    assert nct_ids(**{"query.cond": "phelan-mcdermid"}) and all(
        i in nct_ids(**{"query.term": "Phelan-McDermid"}) for i in nct_ids(**{"query.cond": "PHELAN-MCDERMID"}))
    in_2017 = nct_ids(**{"filter.advanced": "AREA[LastUpdatePostDate]RANGE[2017-01-01,2017-12-31]"})
    assert "NCT00763412" in in_2017  # its lastUpdatePostDate is 2017-06-05
    since = nct_ids(**{"filter.advanced": "AREA[LastUpdatePostDate]RANGE[2017-06-05,MAX]"})
    until = nct_ids(**{"filter.advanced": "AREA[LastUpdatePostDate]RANGE[MIN,2017-06-04]"})
    assert "NCT00763412" in since and "NCT00763412" not in until and not set(since) & set(until)


def test_ctgov_bad_tokens_and_unknown_studies(server):
    code, headers, body = get(server.ctgov_url + "studies", pageToken="not-a-token")
    assert code == 400 and headers["Content-Type"] == "application/json" and "pageToken" in json.loads(body)["message"]
    _, _, first = get(server.ctgov_url + "studies", pageSize="2")
    token = json.loads(first)["nextPageToken"]
    code, _, _ = get(server.ctgov_url + "studies", pageSize="2", pageToken=token, **{"query.cond": "x"})
    assert code == 400  # a token belongs to its query
    code, _, body = get(server.ctgov_url + "studies/NCT00763412")
    assert code == 200 and json.loads(body)["protocolSection"]["identificationModule"]["nctId"] == "NCT00763412"
    assert get(server.ctgov_url + "studies/NCT99999999")[0] == 404
    assert get(server.ctgov_url + "studies/banana")[0] == 400
    assert get(server.ctgov_url + "studies", **{"filter.advanced": "AREA[X]Y"})[0] == 400


# --- faults ------------------------------------------------------------------------------------

@pytest.fixture
def faulty(server: ReplayServer):
    """The shared server with a fresh fault plan (the server reads `faults` on every request)."""
    plan = server.faults = FaultPlan()
    yield server, plan
    server.faults = FaultPlan()


def test_status_faults_carry_retry_after_and_are_consumed_in_order(faulty):
    replay, plan = faulty
    plan.add("esearch", status(429, retry_after=3), status(503))
    code, headers, _ = get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="")
    assert code == 429 and headers["Retry-After"] == "3"
    assert get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="")[0] == 503
    assert get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="")[0] == 200
    assert plan.count("esearch") == 3 and plan.count("efetch") == 0 and plan.pending() == 0


def test_nth_request_and_always_faults(faulty):
    replay, plan = faulty
    plan.on_request("studies", 2, status(500))
    codes = [get(replay.ctgov_url + "studies")[0] for _ in range(3)]
    assert codes == [200, 500, 200]
    plan.always("studies/", status(503))
    assert get(replay.ctgov_url + "studies/NCT00763412")[0] == 503
    assert get(replay.ctgov_url + "studies")[0] == 200  # "studies/" does not match the list path
    plan.clear()
    assert get(replay.ctgov_url + "studies/NCT00763412")[0] == 200
    assert [s.path for s in plan.seen("studies/")] == ["studies/NCT00763412"] * 2


def test_truncate_keeps_full_length_header_so_reads_come_up_short(faulty):
    replay, plan = faulty
    plan.add("efetch", truncate(0.5))
    with urllib.request.urlopen(replay.eutils_url + "efetch.fcgi?db=pubmed&id=11724768", timeout=TIMEOUT) as resp:
        assert resp.status == 200
        with pytest.raises(http.client.IncompleteRead):
            resp.read()


def test_truncate_with_honest_length_leaves_a_cut_document(faulty):
    replay, plan = faulty
    plan.add("efetch", truncate(0.5, keep_length=False))
    code, _, body = get(replay.eutils_url + "efetch.fcgi", db="pubmed", id="11724768")
    assert code == 200 and body.startswith(b"<?xml") and not body.endswith(b"</PubmedArticleSet>")


def test_hostile_and_garbage_bodies(faulty):
    replay, plan = faulty
    plan.add("efetch", malformed(), billion_laughs(), xxe(), drop_records(1))
    plan.add("studies", bad_json())
    url = replay.eutils_url + "efetch.fcgi"
    assert not get(url, db="pubmed", id="11724768")[2].startswith(b"<?xml")
    laughs = get(url, db="pubmed", id="11724768")[2]
    assert b"<!ENTITY lol9" in laughs and b"<PubmedArticleSet>" in laughs
    assert b'SYSTEM "file:///etc/passwd"' in get(url, db="pubmed", id="11724768")[2]
    dropped = get(url, db="pubmed", id="11724768,11742853")[2]
    assert dropped.count(b"<PubmedArticle>") == 1 and dropped.endswith(b"</PubmedArticleSet>")
    code, headers, body = get(replay.ctgov_url + "studies")
    assert code == 200 and headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_delay_makes_a_short_client_timeout_fire(faulty):
    replay, plan = faulty
    plan.add("esearch", delay(2.0))
    with pytest.raises(TimeoutError):
        urllib.request.urlopen(replay.eutils_url + "esearch.fcgi?db=pubmed&term=", timeout=0.3).read()
    assert get(replay.eutils_url + "esearch.fcgi", db="pubmed", term="")[0] == 200  # the server keeps serving


def test_serve_blocks_until_stopped(pubmed_dir):
    ready: list[ReplayServer] = []
    thread = threading.Thread(target=serve, args=(pubmed_dir, None, "127.0.0.1", 0),
                              kwargs={"on_ready": ready.append}, daemon=True)
    thread.start()
    for _ in range(200):
        if ready:
            break
        threading.Event().wait(0.05)
    assert ready, "serve() never reported ready"
    assert get(ready[0].eutils_url + "esearch.fcgi", db="pubmed", term="", retmax="0")[0] == 200
    assert get(ready[0].base_url + "/elsewhere")[0] == 404
    ready[0].stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def _bytes_handle(body: bytes) -> io.BytesIO:
    return io.BytesIO(body)
