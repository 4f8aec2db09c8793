"""PubMed through NCBI E-utilities: new and revised citations for a saved search over a day window.

Protocol: Biopython's `Bio.Entrez` builds every request (parameter encoding, `tool`/`email`/`api_key`,
id-list joining, the switch to POST for long requests), so requests look exactly like Biopython's.
Two parts of `Bio.Entrez` are deliberately not used:
  * its opener (`Entrez._open`): it has no timeout, retries on its own schedule and hard-codes
    eutils.ncbi.nlm.nih.gov (Biopython 1.85-1.88 keep the host as a string literal inside each
    function, not in a module variable). We pass `base_url + "efetch.fcgi"` to
    `Entrez._build_request` and open the request ourselves with a timeout, under our RetryPolicy
    and RateLimiter;
  * its parsers (`Entrez.read`/`Entrez.parse`): responses are untrusted, so they are read by the
    hardened `ingest.pubmed_xml` (no entities, no DTD fetching, bounded size).
`tool`, `email` and `api_key` are passed per request from settings rather than written into the
`Entrez` module globals, so two sources with different settings in one process cannot mix them up.

fetch_changes(query, window):
  1. esearch by entry date (datetype=edat) with usehistory=y: new citations in the window;
     then by modification date (mdat): revisions. A window with more hits than esearch can list
     (10,000) is split in halves by day until it fits, so every batch can be checked by PMID.
  2. efetch each history set in `batch_size` slices (retstart/retmax), skipping slices whose PMIDs
     were all yielded already; each efetch becomes one `Batch` of parsed items (already-yielded
     PMIDs dropped).
  3. Each batch is checked against the PMIDs esearch promised: NCBI sometimes answers with fewer
     records. Missing PMIDs are asked for again (by id) a few times, then logged and reported once
     in `Batch.info["missing"]`; the batch is still yielded, since what arrived is valid. The caller
     decides what a missing PMID means for its watermark.
`Query.text` is the PubMed search term (empty means all[sb]); `Query.params` is not used.
Failures: 429 (Retry-After honoured), 5xx, timeouts, connection errors and unreadable 200 bodies
(truncated, garbage, hostile XML) are retried by the RetryPolicy, then raise SourceUnavailable;
other 4xx raise SourceRequestError at once.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.error import HTTPError

from Bio import Entrez

from ingest.errors import ConfigError, MalformedPayload, SourceRequestError
from ingest.pubmed_xml import ESearchResult, parse_esearch, parse_pubmed_xml
from ingest.retry import RateLimiter, Retryable, RetryPolicy, classify_status
from ingest.settings import PubMedSettings
from ingest.source import Batch, ParsedItem, Query, Window

log = logging.getLogger(__name__)

ESEARCH_ID_LIMIT = 10_000  # PubMed's esearch lists at most this many ids, however large retmax is
SHORT_BATCH_TRIES = 3      # tries for a batch that came back short; NCBI's drops are usually transient
RATE_WITHOUT_KEY = 3.0     # requests/s NCBI allows without an API key
RATE_WITH_KEY = 10.0
ERROR_SNIPPET_BYTES = 2000
_ERROR_RE = re.compile(r"<ERROR>(.*?)</ERROR>", re.DOTALL)


class Opener(Protocol):
    """`urllib.request.urlopen`'s shape; pass another (e.g. a proxy-aware opener's `open`) to change transport."""

    def __call__(self, request: urllib.request.Request, *, timeout: float) -> Any: ...


class PubMedSource:
    """The `Source` for PubMed. Thread-compatible, not thread-safe: use one per ingest run."""

    name = "pubmed"

    def __init__(self, settings: PubMedSettings, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, urlopen: Opener | None = None):
        if not settings.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"pubmed.base_url must be an http(s) URL, not {settings.base_url!r}")
        self.settings = settings
        self._base_url = settings.base_url.rstrip("/") + "/"
        self._urlopen: Opener = urlopen or urllib.request.urlopen
        retry = settings.retry
        self._policy = RetryPolicy(max_attempts=retry.max_attempts, backoff_base=retry.backoff_base,
                                   backoff_max=retry.backoff_max, sleep=sleep)
        rate = settings.requests_per_second or (RATE_WITH_KEY if settings.api_key else RATE_WITHOUT_KEY)
        self._limiter = RateLimiter(rate, clock=clock, sleep=sleep)

    # --- Source protocol ---

    def count(self, query: Query, window: Window) -> int:
        """Citations entered (edat) in the window that match the query; revisions are not counted."""
        return self._esearch(query, window, "edat", retmax=0, usehistory=False).count

    def fetch_changes(self, query: Query, window: Window) -> Iterator[Batch]:
        seen: set[str] = set()         # PMIDs yielded in this run
        unavailable: set[str] = set()  # PMIDs esearch listed but efetch never returned (reported once)
        for datetype in ("edat", "mdat"):
            for part, search in self._history_sets(query, window, datetype):
                yield from self._fetch_history_set(search, part, datetype, seen, unavailable)

    # --- esearch ---

    def _history_sets(self, query: Query, window: Window, datetype: str) -> Iterator[tuple[Window, ESearchResult]]:
        """esearch with history; split the window while esearch cannot list every hit."""
        search = self._esearch(query, window, datetype, retmax=ESEARCH_ID_LIMIT, usehistory=True)
        if search.count > len(search.ids) and window.start < window.end:
            middle = window.start + (window.end - window.start) // 2
            log.info("PubMed %s search over %s..%s has %d hits, more than esearch lists; splitting the window",
                     datetype, window.start, window.end, search.count)
            yield from self._history_sets(query, Window(window.start, middle), datetype)
            yield from self._history_sets(query, Window(middle + dt.timedelta(days=1), window.end), datetype)
            return
        if search.count and (not search.webenv or not search.query_key):
            raise SourceRequestError("NCBI esearch returned no WebEnv/QueryKey although usehistory=y was sent.")
        yield window, search

    def _esearch(self, query: Query, window: Window, datetype: str, *, retmax: int,
                 usehistory: bool) -> ESearchResult:
        params = {
            "db": "pubmed",
            "term": query.text.strip() or "all[sb]",
            "datetype": datetype,
            "mindate": window.start.strftime("%Y/%m/%d"),
            "maxdate": window.end.strftime("%Y/%m/%d"),
            "retstart": "0",
            "retmax": str(retmax),
        }
        if usehistory:
            params["usehistory"] = "y"
        what = f"PubMed esearch ({datetype} {window.start}..{window.end})"
        return self._call("esearch.fcgi", params, what, parse_esearch)

    # --- efetch ---

    def _fetch_history_set(self, search: ESearchResult, window: Window, datetype: str,
                           seen: set[str], unavailable: set[str]) -> Iterator[Batch]:
        size = self.settings.batch_size
        # esearch listed every id (the window split guarantees it unless one day has >10k hits).
        listed = search.ids if len(search.ids) == search.count else None
        for retstart in range(0, search.count, size):
            expected = None
            if listed is not None:
                expected = [p for p in listed[retstart:retstart + size] if p not in unavailable]
                if seen.issuperset(expected):
                    continue
            items, missing = self._efetch_checked(search, retstart, expected, datetype)
            unavailable.update(missing)
            fresh = [item for item in items if _pmid(item) not in seen]
            seen.update(_pmid(item) for item in fresh)
            if not fresh and not missing:
                continue
            yield Batch(fresh, info={
                "source": self.name, "datetype": datetype, "window": f"{window.start}..{window.end}",
                "retstart": retstart, "expected": len(expected) if expected is not None
                else min(size, search.count - retstart),
                "received": len(items), "already_seen": len(items) - len(fresh), "missing": missing,
            })

    def _efetch_checked(self, search: ESearchResult, retstart: int, expected: list[str] | None,
                        datetype: str) -> tuple[list[ParsedItem], list[str]]:
        """One history slice, re-asking for PMIDs NCBI left out; returns (items, still missing)."""
        want = len(expected) if expected is not None else min(self.settings.batch_size, search.count - retstart)
        received: dict[str, ParsedItem] = {}
        missing: list[str] = []
        for attempt in range(1, SHORT_BATCH_TRIES + 1):
            if attempt == 1 or expected is None:
                items = self._efetch({"WebEnv": search.webenv or "", "query_key": search.query_key or "",
                                      "retstart": str(retstart), "retmax": str(self.settings.batch_size)},
                                     f"PubMed efetch ({datetype} history, retstart {retstart})")
            else:
                items = self._efetch({"id": ",".join(missing)},
                                     f"PubMed efetch ({len(missing)} PMIDs missing from retstart {retstart})")
            received.update((_pmid(item), item) for item in items)
            missing = [p for p in expected if p not in received] if expected is not None else []
            short = bool(missing) or (expected is None and len(received) < want)
            if not short:
                return list(received.values()), []
            if attempt < SHORT_BATCH_TRIES:
                delay = self._policy.wait_for(attempt, None)
                log.info("PubMed efetch at retstart %d returned %d of %d records; asking again in %.1fs",
                         retstart, len(received), want, delay)
                self._policy.sleep(delay)
        log.warning("PubMed efetch at retstart %d (%s) still lacks %d of %d records after %d tries; "
                    "continuing without them: %s", retstart, datetype, want - len(received), want,
                    SHORT_BATCH_TRIES, ", ".join(missing) or "(PMIDs unknown: the day has over 10,000 hits)")
        return list(received.values()), missing

    def _efetch(self, selection: dict[str, str], what: str) -> list[ParsedItem]:
        params = {"db": "pubmed", "retmode": "xml", **selection}
        return self._call("efetch.fcgi", params, what, parse_pubmed_xml)

    # --- transport ---

    def _call(self, cgi: str, params: dict[str, str], what: str, parse: Callable[[bytes], Any]) -> Any:
        """One E-utility request under the retry policy; the parser's MalformedPayload means refetch."""
        def attempt() -> Any:
            body = self._request(cgi, params, what)
            try:
                return parse(body)
            except MalformedPayload as exc:
                raise Retryable(f"unreadable response ({exc})") from exc
        return self._policy.call(what, attempt)

    def _request(self, cgi: str, params: dict[str, str], what: str) -> bytes:
        request = self._build_request(cgi, params)
        self._limiter.wait()
        try:
            with self._urlopen(request, timeout=self.settings.retry.timeout) as response:
                return response.read()
        except HTTPError as exc:
            detail = _error_detail(exc)
            try:
                classify_status(exc.code, exc.headers.get("Retry-After") if exc.headers else None, what)
            except SourceRequestError as refused:
                raise SourceRequestError(f"{refused} NCBI said: {detail}" if detail else str(refused)) from None
            raise Retryable(f"HTTP {exc.code}") from exc  # codes classify_status lets through (e.g. 3xx loops)
        except (OSError, http.client.HTTPException) as exc:
            # URLError (connection refused, DNS), TimeoutError, resets, IncompleteRead (cut-off body).
            raise Retryable(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc

    def _build_request(self, cgi: str, params: dict[str, str]) -> urllib.request.Request:
        identity = {"tool": self.settings.tool, "email": self.settings.email, "api_key": self.settings.api_key}
        return Entrez._build_request(self._base_url + cgi, {**params, **identity})


def _pmid(item: ParsedItem) -> str:
    return str(item.record.pmid)  # Article and Deletion both carry it


def _error_detail(exc: HTTPError) -> str:
    """The first bytes of an error body (NCBI explains 400s there), as one line."""
    try:
        body = exc.read(ERROR_SNIPPET_BYTES) if exc.fp is not None else b""
    except (OSError, http.client.HTTPException):
        body = b""
    finally:
        exc.close()
    text = body.decode("utf-8", "replace")
    found = _ERROR_RE.search(text)
    return " ".join((found.group(1) if found else text).split())[:300]
