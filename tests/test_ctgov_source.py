"""ClinicalTrials.gov source: query building, paging, retries and failures.

Unit tests script the HTTP layer with `httpx.MockTransport`; integration tests run the production
client against the replay server (real AACT API v2 records) with injected faults.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ingest.clinicaltrials import ClinicalTrialsSource, search_params
from ingest.ctgov_json import parse_ctgov_payload
from ingest.errors import MalformedPayload, SourceRequestError, SourceUnavailable
from ingest.replay import FaultPlan, ReplayServer
from ingest.replay_faults import bad_json, delay, status, truncate
from ingest.source import Batch, Query, Source, Window
from oncolit.settings import CTGovSettings, RetrySettings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ctgov"
BASE = "https://ctgov.test/api/v2/"
WINDOW = Window(dt.date(2026, 1, 1), dt.date(2026, 1, 31))
Handler = Callable[[httpx.Request], httpx.Response]


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def settings(base_url: str = BASE, **retry: float) -> CTGovSettings:
    return CTGovSettings(base_url=base_url, page_size=2, requests_per_second=1000.0,
                         retry=RetrySettings(**({"max_attempts": 3, "timeout": 5.0} | retry)))


class Recorder:
    """Scripted transport: answers each request from `script` (or `default`) and logs it."""

    def __init__(self, *script: Handler | httpx.Response, default: Handler | None = None):
        self.script = list(script)
        self.default = default
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if self.script else self.default
        assert step is not None, f"unexpected request {request.url}"
        return step(request) if callable(step) else step

    @property
    def params(self) -> list[dict[str, str]]:
        return [dict(r.url.params) for r in self.requests]


def pages(request: httpx.Request) -> httpx.Response:
    """The two hand-written pages, chosen by page token like the real API."""
    token = request.url.params.get("pageToken")
    body = {None: "search_page1.json", "page-2-token": "search_page2.json"}.get(token)
    return httpx.Response(200, content=fixture(body)) if body else httpx.Response(400, text="Invalid pageToken")


def make_source(recorder: Recorder, sleeps: list[float] | None = None, **retry: float) -> ClinicalTrialsSource:
    client = httpx.Client(transport=httpx.MockTransport(recorder))
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return ClinicalTrialsSource(settings(**retry), client, sleep=sleep)


def collect(batches: Iterator[Batch], into: list[Batch]) -> list[Batch]:
    """Drain a generator into `into`, so a test can see what arrived before an error."""
    for batch in batches:
        into.append(batch)
    return into


def ids(batches: list[Batch]) -> list[str]:
    return [item.record.nct_id for b in batches for item in b.items]


# --- query building -------------------------------------------------------------------------------

def test_search_params_map_saved_search_fields() -> None:
    query = Query("EGFR L858R", {"cond": "non-small cell lung cancer", "intr": "osimertinib",
                                 "overall_status": ["RECRUITING", "ACTIVE_NOT_RECRUITING"],
                                 "phase": ["PHASE2", "PHASE3"], "query.locn": "Boston", "spons": ""})
    params = search_params(query, WINDOW)
    assert params == {
        "query.term": "EGFR L858R",
        "query.cond": "non-small cell lung cancer",
        "query.intr": "osimertinib",
        "filter.overallStatus": "RECRUITING,ACTIVE_NOT_RECRUITING",
        "query.locn": "Boston",
        "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-01-01,2026-01-31] AND AREA[Phase](PHASE2 OR PHASE3)",
    }


def test_search_params_combine_text_term_and_advanced() -> None:
    params = search_params(Query("melanoma", {"term": "adjuvant", "advanced": "AREA[StudyType]A OR AREA[StudyType]B"}),
                           WINDOW)
    assert params["query.term"] == "(melanoma) AND (adjuvant)"
    assert params["filter.advanced"].endswith(" AND (AREA[StudyType]A OR AREA[StudyType]B)")
    assert search_params(Query(""), None) == {}


def test_unknown_search_parameter_is_refused() -> None:
    with pytest.raises(SourceRequestError, match="unknown ClinicalTrials.gov search parameter 'conditon'"):
        search_params(Query("x", {"conditon": "melanoma"}), WINDOW)


# --- paging ----------------------------------------------------------------------------------------

def test_source_satisfies_the_protocol() -> None:
    source = make_source(Recorder(default=pages))
    assert isinstance(source, Source) and source.name == "ctgov"


def test_fetch_changes_follows_next_page_token() -> None:
    recorder = Recorder(default=pages)
    batches = list(make_source(recorder).fetch_changes(Query("breast", {"cond": "breast cancer"}), WINDOW))
    assert ids(batches) == ["NCT90000011", "NCT90000012", "NCT90000013"]
    assert [len(b.items) for b in batches] == [2, 1]
    assert batches[0].info == {"page": 1, "page_token": None, "next_page_token": "page-2-token",
                               "total_count": 3, "returned": 2}
    first, second = recorder.params
    assert first == {"query.term": "breast", "query.cond": "breast cancer", "pageSize": "2", "format": "json",
                     "filter.advanced": "AREA[LastUpdatePostDate]RANGE[2026-01-01,2026-01-31]"}
    assert second == first | {"pageToken": "page-2-token"}
    assert all(r.url.path == "/api/v2/studies" for r in recorder.requests)
    assert batches[0].items[0].raw_format == "ctgov-json"


def test_empty_result_is_one_empty_batch() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("search_empty.json")))
    batches = list(make_source(recorder).fetch_changes(Query("nothing matches"), WINDOW))
    assert len(batches) == 1 and batches[0].items == [] and batches[0].info["total_count"] == 0


def test_count_asks_for_the_total_only() -> None:
    recorder = Recorder(default=pages)
    assert make_source(recorder).count(Query("breast"), WINDOW) == 3
    assert recorder.params[0]["countTotal"] == "true" and recorder.params[0]["pageSize"] == "1"


def test_count_without_total_on_a_last_page_counts_the_studies() -> None:
    recorder = Recorder(httpx.Response(200, content=fixture("search_page2.json")))
    assert make_source(recorder).count(Query("x"), WINDOW) == 1


def test_a_repeated_page_token_stops_the_loop() -> None:
    looping = json.dumps({"studies": [], "nextPageToken": "same"}).encode()
    recorder = Recorder(default=lambda r: httpx.Response(200, content=looping))
    with pytest.raises(MalformedPayload, match="page token 'same' twice"):
        list(make_source(recorder).fetch_changes(Query("x"), WINDOW))
    assert len(recorder.requests) == 2


def test_real_pages_then_an_expired_token(shared_data: Path) -> None:
    """Real Phelan-McDermid pages (5 + 5 studies); the third page's token is refused twice."""
    folder = shared_data / "ctgov" / "real" / "biomcp"
    first = (folder / "search_phelan_limit5_20260811.json").read_bytes()
    follow = (folder / "search_phelan_next_20260811.json").read_bytes()
    expired = parse_ctgov_payload(follow).next_page_token
    recorder = Recorder(httpx.Response(200, content=first), httpx.Response(200, content=follow),
                        default=lambda r: httpx.Response(400, text=f"Invalid pageToken: {expired}"))
    got: list[Batch] = []
    with pytest.raises(SourceRequestError, match=f"refused page token '{expired}' \\(page 3\\) twice"):
        collect(make_source(recorder).fetch_changes(Query("", {"cond": "Phelan-McDermid Syndrome"}), WINDOW), got)
    assert [len(b.items) for b in got] == [5, 5]
    assert got[0].info["total_count"] == 21 and got[1].info["total_count"] is None
    assert [p.get("pageToken") for p in recorder.params][2:] == [expired, expired]


def test_a_page_token_refused_once_is_retried_once() -> None:
    recorder = Recorder(pages, httpx.Response(400, text="Invalid pageToken"), default=pages)
    batches = list(make_source(recorder).fetch_changes(Query("x"), WINDOW))
    assert ids(batches) == ["NCT90000011", "NCT90000012", "NCT90000013"]


# --- retries ----------------------------------------------------------------------------------------

def test_429_waits_as_long_as_retry_after_says() -> None:
    sleeps: list[float] = []
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), default=pages)
    batches = list(make_source(recorder, sleeps).fetch_changes(Query("x"), WINDOW))
    assert ids(batches)[0] == "NCT90000011"
    assert 7.0 in sleeps
    assert len(recorder.requests) == 3


def raise_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


def raise_connect(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


@pytest.mark.parametrize("failure", [
    httpx.Response(500, text="Internal Server Error"),
    httpx.Response(503),
    raise_timeout,
    raise_connect,
    httpx.Response(200, content=fixture("search_page1.json")[:200]),  # truncated JSON
    httpx.Response(200, content=b"<html>proxy error</html>"),
])
def test_transient_failures_are_retried(failure: Handler | httpx.Response) -> None:
    sleeps: list[float] = []
    recorder = Recorder(failure, default=pages)
    batches = list(make_source(recorder, sleeps).fetch_changes(Query("x"), WINDOW))
    assert ids(batches) == ["NCT90000011", "NCT90000012", "NCT90000013"]
    assert len(recorder.requests) == 3 and 1.0 in sleeps  # first back-off: backoff_base


def test_retries_run_out_with_source_unavailable_and_earlier_batches_kept() -> None:
    recorder = Recorder(pages, default=lambda r: httpx.Response(502))
    got: list[Batch] = []
    with pytest.raises(SourceUnavailable, match=r"search page 2 .* failed after 3 attempts \(last: HTTP 502\)"):
        collect(make_source(recorder).fetch_changes(Query("x"), WINDOW), got)
    assert ids(got) == ["NCT90000011", "NCT90000012"]
    assert len(recorder.requests) == 4


def test_a_refused_query_is_not_retried_and_says_why() -> None:
    recorder = Recorder(httpx.Response(400, text="Unknown parameter query.bogus"))
    with pytest.raises(SourceRequestError, match="HTTP 400.*Server said: Unknown parameter query.bogus"):
        list(make_source(recorder).fetch_changes(Query("x", {"query.bogus": "1"}), WINDOW))
    assert len(recorder.requests) == 1


def test_well_formed_json_of_the_wrong_shape_is_not_retried(shared_data: Path) -> None:
    v1 = (shared_data / "ctgov" / "real" / "aact" / "classic_v1_json" / "ctg_api_all.json").read_bytes()
    recorder = Recorder(httpx.Response(200, content=v1))
    with pytest.raises(MalformedPayload, match="retired classic"):
        list(make_source(recorder).fetch_changes(Query("x"), WINDOW))
    assert len(recorder.requests) == 1


def test_an_oversize_response_is_refused() -> None:
    recorder = Recorder(default=pages)
    source = ClinicalTrialsSource(settings(), httpx.Client(transport=httpx.MockTransport(recorder)),
                                  sleep=lambda s: None, max_bytes=100)
    with pytest.raises(MalformedPayload, match="exceeds 100 bytes"):
        list(source.fetch_changes(Query("x"), WINDOW))
    assert len(recorder.requests) == 1


def test_requests_are_rate_limited() -> None:
    sleeps: list[float] = []
    recorder = Recorder(default=pages)
    source = ClinicalTrialsSource(settings().model_copy(update={"requests_per_second": 2.0}),
                                  httpx.Client(transport=httpx.MockTransport(recorder)), sleep=sleeps.append)
    list(source.fetch_changes(Query("x"), WINDOW))
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 0.5


# --- single study ------------------------------------------------------------------------------------

def test_get_study(shared_data: Path) -> None:
    body = (shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json").read_bytes()
    recorder = Recorder(httpx.Response(200, content=body))
    item = make_source(recorder).get_study("nct02576665")
    assert item.record.nct_id == "NCT02576665" and item.raw_format == "ctgov-json"
    assert recorder.requests[0].url.path == "/api/v2/studies/NCT02576665"


def test_get_study_errors() -> None:
    recorder = Recorder(httpx.Response(404, text="Study not found"),
                        httpx.Response(200, content=fixture("withdrawn.json")))
    source = make_source(recorder)
    with pytest.raises(SourceRequestError, match="HTTP 404.*Study not found"):
        source.get_study("NCT90000099")
    with pytest.raises(MalformedPayload, match="asked ClinicalTrials.gov for NCT90000099, got NCT90000002"):
        source.get_study("NCT90000099")
    with pytest.raises(SourceRequestError, match="not an NCT id"):
        source.get_study("12345")
    assert len(recorder.requests) == 2


# --- against the replay server -----------------------------------------------------------------------

ALL_TIME = Window(dt.date(2000, 1, 1), dt.date(2030, 12, 31))


@pytest.fixture
def aact_dir(shared_data: Path) -> Path:
    return shared_data / "ctgov" / "real" / "aact" / "v2_json"


def replay_source(server: ReplayServer, sleeps: list[float], **retry: float) -> ClinicalTrialsSource:
    client = httpx.Client()
    return ClinicalTrialsSource(settings(server.ctgov_url, **retry), client, sleep=sleeps.append)


def expected_ids(aact_dir: Path, window: Window) -> list[str]:
    from ingest.ctgov_json import iter_ctgov_path
    trials = {i.record.nct_id: i.record for i in iter_ctgov_path(aact_dir)}
    return sorted(n for n, t in trials.items() if t.last_updated and window.start <= t.last_updated <= window.end)


def test_replay_window_and_pages(aact_dir: Path) -> None:
    window = Window(dt.date(2017, 1, 1), dt.date(2024, 12, 31))
    with ReplayServer(ctgov_dir=aact_dir) as server:
        source = replay_source(server, [])
        batches = list(source.fetch_changes(Query(""), window))
        total = source.count(Query(""), window)
        everything = list(source.fetch_changes(Query(""), ALL_TIME))
        item = source.get_study("NCT00763412")
    assert sorted(ids(batches)) == expected_ids(aact_dir, window) and len(ids(batches)) == total
    assert 0 < total < len(ids(everything))
    assert all(len(b.items) <= 2 for b in batches) and batches[-1].info["next_page_token"] is None
    assert item.record.has_results


def test_replay_faults_are_survived(aact_dir: Path) -> None:
    plan = (FaultPlan().add("studies", status(429, retry_after=3), status(500))
            .on_request("studies", 4, truncate(0.5))
            .on_request("studies", 6, truncate(0.5, keep_length=False))
            .on_request("studies", 8, bad_json())
            .on_request("studies", 10, delay(2.0)))
    sleeps: list[float] = []
    with ReplayServer(ctgov_dir=aact_dir, faults=plan) as server:
        batches = list(replay_source(server, sleeps, timeout=0.3).fetch_changes(Query(""), ALL_TIME))
    assert sorted(ids(batches)) == expected_ids(aact_dir, ALL_TIME)
    assert 3.0 in sleeps and plan.pending() == 0


def test_replay_token_refused_then_unavailable(aact_dir: Path) -> None:
    plan = FaultPlan().on_request("studies", 2, status(400)).on_request("studies", 3, status(400))
    got: list[Batch] = []
    with ReplayServer(ctgov_dir=aact_dir, faults=plan) as server:
        with pytest.raises(SourceRequestError, match="refused page token .* \\(page 2\\) twice"):
            collect(replay_source(server, []).fetch_changes(Query(""), ALL_TIME), got)
        token = got[0].info["next_page_token"]
        assert [s.params.get("pageToken") for s in plan.seen("studies")][1:] == [token, token]
        got.clear()
        generator = replay_source(server, []).fetch_changes(Query(""), ALL_TIME)
        got.append(next(generator))
        plan.always("studies", status(503))
        with pytest.raises(SourceUnavailable, match="HTTP 503"):
            collect(generator, got)
    assert len(got) == 1 and len(got[0].items) == 2
