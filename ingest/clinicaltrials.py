"""ClinicalTrials.gov API v2 source: what changed in a window, one `/studies` page per batch.

The window is asked for with `filter.advanced=AREA[LastUpdatePostDate]RANGE[start,end]`, so a study
revised in the window comes back whole (a new version for the catalog) and the pages follow
`nextPageToken` until the API stops sending one. The HTTP client is passed in: tests hand it an
`httpx.MockTransport` or point it at the replay server, and nothing here builds a connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from ingest.ctgov_json import DEFAULT_MAX_BYTES, NCT_ID_RE, ParsedPage, decode_json, parse_ctgov_object
from ingest.errors import MalformedPayload, SourceRequestError
from ingest.records.trial import Trial
from ingest.retry import RateLimiter, Retryable, RetryPolicy, classify_status
from ingest.settings import CTGovSettings
from ingest.source import Batch, ParsedItem, Query, Window

log = logging.getLogger(__name__)

# Saved-search parameter -> API v2 query parameter. "term", "advanced" and "phase" are combined
# with the query text and the window instead (see `search_params`); keys already spelled the API's
# way ("query.locn", "filter.geo", "postFilter.overallStatus", ...) pass through untouched.
PARAM_NAMES = {
    "cond": "query.cond",
    "intr": "query.intr",
    "titles": "query.titles",
    "outc": "query.outc",
    "spons": "query.spons",
    "lead": "query.lead",
    "id": "query.id",
    "locn": "query.locn",
    "patient": "query.patient",
    "overall_status": "filter.overallStatus",
    "geo": "filter.geo",
    "ids": "filter.ids",
}
COMBINED_PARAMS = ("term", "advanced", "phase")
_API_PREFIXES = ("query.", "filter.", "postFilter.")
_ERROR_BODY_CHARS = 300


class ClinicalTrialsSource:
    """`Source` for ClinicalTrials.gov: `fetch_changes` yields one Batch per `/studies` page."""

    name = "ctgov"

    def __init__(self, settings: CTGovSettings, client: httpx.Client, *,
                 sleep: Callable[[float], None] = time.sleep, max_bytes: int = DEFAULT_MAX_BYTES):
        self.settings = settings
        self.client = client
        self.max_bytes = max_bytes
        self.retry = RetryPolicy(max_attempts=settings.retry.max_attempts, backoff_base=settings.retry.backoff_base,
                                 backoff_max=settings.retry.backoff_max, sleep=sleep)
        self.limiter = RateLimiter(settings.requests_per_second, sleep=sleep)

    @property
    def studies_url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/studies"

    # --- Source protocol ----------------------------------------------------------------------------

    def count(self, query: Query, window: Window) -> int:
        """Total matching studies for the window: one small page with countTotal=true."""
        params = search_params(query, window) | {"countTotal": "true", "pageSize": "1"}
        page = self._get(self.studies_url, params, f"ClinicalTrials.gov count ({_describe(params)})")
        if page.total_count is not None:
            return page.total_count
        if page.next_page_token is None:
            return len(page.items)
        raise MalformedPayload("ClinicalTrials.gov answered a countTotal=true request without totalCount.")

    def fetch_changes(self, query: Query, window: Window) -> Iterator[Batch]:
        """Every study matching `query` whose last update was posted in `window`, page by page.

        A batch is yielded as soon as its page is read, so a failure on page n leaves pages 1..n-1
        with the caller, and the error says which page token failed.
        """
        params = search_params(query, window) | {"pageSize": str(self.settings.page_size)}
        token: str | None = None
        seen_tokens: set[str] = set()
        page_no = 0
        while True:
            page_no += 1
            page = self._get_page(params, token, page_no)
            yield Batch(items=page.items, info={
                "page": page_no, "page_token": token, "next_page_token": page.next_page_token,
                "total_count": page.total_count, "returned": len(page.items)})
            token = page.next_page_token
            if token is None:
                return
            if token in seen_tokens:
                raise MalformedPayload(f"ClinicalTrials.gov sent page token {token!r} twice; stopping "
                                       "rather than looping. Run again to restart the window.")
            seen_tokens.add(token)

    # --- single study ---------------------------------------------------------------------------------

    def get_study(self, nct_id: str) -> ParsedItem:
        """One study by NCT id (`/studies/{nctId}`), whole, as the catalog stores it."""
        nct_id = nct_id.strip().upper()
        if not NCT_ID_RE.match(nct_id):
            raise SourceRequestError(f"{nct_id!r} is not an NCT id (NCT followed by 8 digits).")
        page = self._get(f"{self.studies_url}/{nct_id}", {"format": "json"}, f"ClinicalTrials.gov study {nct_id}")
        if len(page.items) != 1:
            raise MalformedPayload(f"ClinicalTrials.gov returned {len(page.items)} studies for {nct_id}, expected 1.")
        item = page.items[0]
        assert isinstance(item.record, Trial)
        if item.record.nct_id != nct_id:
            raise MalformedPayload(f"asked ClinicalTrials.gov for {nct_id}, got {item.record.nct_id}.")
        return item

    # --- HTTP -----------------------------------------------------------------------------------------

    def _get_page(self, params: dict[str, str], token: str | None, page_no: int) -> ParsedPage:
        """One search page. A refused page token (the API says 400 when one expires) gets one more
        try, then a SourceRequestError that names the token."""
        what = f"ClinicalTrials.gov search page {page_no} ({_describe(params)})"
        if token is None:
            return self._get(self.studies_url, params, what)
        paged = params | {"pageToken": token}
        try:
            return self._get(self.studies_url, paged, what)
        except SourceRequestError as first:
            log.warning("page token %r refused (%s); trying the page once more", token, first)
            self.retry.sleep(self.retry.wait_for(1, None))
        try:
            return self._get(self.studies_url, paged, what)
        except SourceRequestError as exc:
            raise SourceRequestError(
                f"ClinicalTrials.gov refused page token {token!r} (page {page_no}) twice: {exc} "
                "Page tokens expire; run the window again from the start.") from exc

    def _get(self, url: str, params: dict[str, str], what: str) -> ParsedPage:
        """GET and parse with retries: 429/5xx/timeouts/cut-off or unreadable JSON are retried;
        other 4xx and well-formed JSON of the wrong shape are not (another try cannot fix them)."""
        params = params | {"format": "json"}
        return self.retry.call(what, lambda: self._attempt(url, params, what))

    def _attempt(self, url: str, params: dict[str, str], what: str) -> ParsedPage:
        self.limiter.wait()
        try:
            with self.client.stream("GET", url, params=params, timeout=self.settings.retry.timeout) as response:
                if response.status_code >= 400:
                    _raise_for_status(response, what)
                body = _read_bounded(response, self.max_bytes, what)
        except httpx.TimeoutException as exc:
            raise Retryable(f"timeout ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Retryable(f"connection error ({type(exc).__name__}: {exc})") from exc
        try:
            data = decode_json(body, max_bytes=self.max_bytes, what="the response body")
        except MalformedPayload as exc:
            raise Retryable(f"unreadable JSON: {exc}") from exc
        return parse_ctgov_object(data, what=what)


def _raise_for_status(response: httpx.Response, what: str) -> None:
    """Retryable for 429/5xx (honouring Retry-After); SourceRequestError with the API's own words
    otherwise, since CT.gov explains a bad parameter in the body."""
    try:
        classify_status(response.status_code, response.headers.get("Retry-After"), what)
    except SourceRequestError as exc:
        detail = _error_body(response)
        raise SourceRequestError(f"{exc} Server said: {detail}" if detail else str(exc)) from None


def _error_body(response: httpx.Response) -> str:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _ERROR_BODY_CHARS:
            break
    text = b"".join(chunks)[:_ERROR_BODY_CHARS].decode("utf-8", "replace")
    return " ".join(text.split())


def _read_bounded(response: httpx.Response, max_bytes: int, what: str) -> bytes:
    """Read the body but stop at `max_bytes`: a runaway response is refused, not buffered."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise MalformedPayload(f"{what}: response exceeds {max_bytes:,} bytes; refusing to read it.")
        chunks.append(chunk)
    return b"".join(chunks)


# --- query building ---------------------------------------------------------------------------------

def search_params(query: Query, window: Window | None) -> dict[str, str]:
    """Saved search + window -> `/studies` parameters.

    `Query.text` is the general search (`query.term`), AND-ed with a `term` param if both are set;
    the window becomes a LastUpdatePostDate range AND-ed with any `advanced` expression (parenthesised
    when it holds an OR, so AND cannot bind into it); a `phase` param (e.g. ["PHASE2", "PHASE3"])
    becomes an AREA[Phase] clause, since v2 has no phase filter.
    """
    params: dict[str, str] = {}
    advanced: list[str] = []
    if window is not None:
        advanced.append(f"AREA[LastUpdatePostDate]RANGE[{window.start.isoformat()},{window.end.isoformat()}]")
    terms = [query.text.strip()] if query.text and query.text.strip() else []
    for key, value in query.params.items():
        if value is None or value == "" or value == []:
            continue
        if key == "phase":
            phases = _as_list(value)
            advanced.append(f"AREA[Phase]({' OR '.join(phases)})" if len(phases) > 1 else f"AREA[Phase]{phases[0]}")
        elif key == "term":
            terms.append(_join(value))
        elif key in ("advanced", "filter.advanced"):
            expression = _join(value)
            advanced.append(f"({expression})" if " OR " in expression.upper() else expression)
        elif key in PARAM_NAMES:
            params[PARAM_NAMES[key]] = _join(value)
        elif key.startswith(_API_PREFIXES):
            params[key] = _join(value)
        else:
            raise SourceRequestError(
                f"unknown ClinicalTrials.gov search parameter {key!r}; use one of "
                f"{', '.join(sorted([*PARAM_NAMES, *COMBINED_PARAMS]))} or an API name such as 'query.locn'.")
    if terms:
        params["query.term"] = terms[0] if len(terms) == 1 else " AND ".join(f"({t})" for t in terms)
    if advanced:
        params["filter.advanced"] = " AND ".join(advanced)
    return params


def _as_list(value: Any) -> list[str]:
    if isinstance(value, set | frozenset):
        return sorted(str(v) for v in value)
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _join(value: Any) -> str:
    """Lists become the comma-separated form the API uses for multi-valued filters."""
    return ",".join(_as_list(value))


def _describe(params: dict[str, str]) -> str:
    shown = {k: v for k, v in params.items() if k.startswith(_API_PREFIXES)}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "all studies"
