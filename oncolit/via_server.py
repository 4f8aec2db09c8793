"""CLI commands through the `oncolit serve` that owns the data dir: the requests, the one function each side
runs to answer them, and the client.

Why it exists: while a server holds the embedded index no other process may open it (`oncolit.owner`), so
`oncolit search`, `ask`, `index sync|rebuild|verify` and `schedule run-once` send their work to the server's
`/local/...` routes (`oncolit.api_routes.local`) with the loopback token from the owner file. The same
request object and the same payload function (`search_payload`, `ask_payload`, `verify_payload`) serve both paths, so a
command's `--json` has one shape whether it ran here or in the server.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from ingest.errors import IndexBusy, OncoLitError, RecordNotFound, UsageError
from oncolit.owner import ServerOwner, running_server, say
from oncolit.settings import Settings

if TYPE_CHECKING:
    from index.store import SearchFilter
    from oncolit.resources import Resources


class FilterOptions(Protocol):
    """The filter options a search or an answer takes, named alike by the CLI, /local and the public API."""

    type: Literal["article", "trial"] | None
    since: dt.date | None
    until: dt.date | None
    design: list[str]
    status: list[str]
    phase: list[str]
    language: list[str]
    site: list[str]
    max_level: int | None
    include_retracted: bool


def search_filter_of(opts: FilterOptions) -> SearchFilter:
    """The index filter of those options: one mapping, so the surfaces cannot drift apart."""
    from index.store import SearchFilter

    return SearchFilter(record_types=(opts.type,) if opts.type else (), published_from=opts.since,
                        published_to=opts.until, designs=tuple(opts.design),
                        trial_status_any=tuple(s.upper() for s in opts.status),
                        phases_any=tuple(p.upper() for p in opts.phase), languages=tuple(opts.language),
                        mesh_any=tuple(opts.site), max_evidence_level=opts.max_level,
                        include_retracted=opts.include_retracted)


class SearchRequest(BaseModel):
    """`oncolit search`'s query and options (POST /local/search)."""

    query: str = Field(..., min_length=1, max_length=1000)
    type: Literal["article", "trial"] | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    design: list[str] = []
    status: list[str] = []
    phase: list[str] = []
    language: list[str] = []
    site: list[str] = []
    max_level: int | None = Field(None, ge=1)
    include_retracted: bool = False
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    rerank: bool | None = None
    expand: bool | None = None
    limit: int = Field(10, ge=1)

    def search_filter(self) -> SearchFilter:
        return search_filter_of(self)


class AskRequest(BaseModel):
    """`oncolit ask`'s question and options (POST /local/ask). The server answers with its own model, or
    with verbatim quotes when `extractive` (`ask --backend none`)."""

    question: str = Field(..., min_length=1, max_length=1000)
    type: Literal["article", "trial"] | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    design: list[str] = []
    limit: int = Field(8, ge=1, le=20)
    extractive: bool = False

    def search_filter(self) -> SearchFilter:
        from index.store import SearchFilter

        return SearchFilter(record_types=(self.type,) if self.type else (), published_from=self.since,
                            published_to=self.until, designs=tuple(self.design))


class SyncRequest(BaseModel):
    """`oncolit index sync` (or `rebuild` with `full`) (POST /local/index/sync)."""

    full: bool = False


class VerifyRequest(BaseModel):
    """`oncolit index verify [--repair]` (POST /local/index/verify)."""

    repair: bool = False


class JobRequest(BaseModel):
    """`oncolit schedule run-once`, or a job of a `schedule run` beside the server (POST /local/jobs/run):
    one saved search's chain. `wait`: seconds to wait for a running ingest (0: skip when one runs)."""

    search: str = Field(..., min_length=1)
    wait: float = Field(0.0, ge=0)


def search_payload(searcher: Any, req: SearchRequest) -> dict[str, Any]:
    """What `oncolit search --json` prints (the curated searcher: excluded records are never shown)."""
    added = searcher.expansions(req.query, req.expand, req.mode)
    hits = searcher.search(req.query, req.search_filter(), limit=req.limit, mode=req.mode, rerank=req.rerank,
                           expand=req.expand)
    return {"query": req.query, "expansions": [e.as_dict() for e in added], "results": [h.as_dict() for h in hits]}


def ask_payload(res: Resources, req: AskRequest) -> dict[str, Any]:
    """What `oncolit ask --json` prints."""
    from synthesis.answer import answer
    from synthesis.llm import make_llm

    llm = make_llm("none") if req.extractive else res.llm
    result = answer(req.question, res.searcher, res.catalog, llm, filters=req.search_filter(), limit=req.limit,
                    models=res.findings_models, answerer=res.answer_model)
    return result.as_dict()


def verify_payload(catalog: Any, handle: Any, req: VerifyRequest) -> dict[str, Any]:
    """What `oncolit index verify --json` prints: the check, and with `repair` (when it found something) what the
    repair did and the check after it."""
    from index.verify import repair, verify
    from ingest.curation import Curation

    is_excluded = Curation(catalog).exclusions().__contains__
    found = verify(catalog, handle, is_excluded=is_excluded)
    data: dict[str, Any] = found.as_dict()
    if req.repair and not found.ok:
        data["repair"] = repair(catalog, handle, found, is_excluded=is_excluded).as_dict()
        data["after_repair"] = verify(catalog, handle, is_excluded=is_excluded).as_dict()
    return data


def serving_owner(settings: Settings) -> ServerOwner | None:
    """The other process (an `oncolit serve`) that owns the data dir, if any."""
    owner = running_server(settings)
    return owner if owner is not None and not owner.is_self() else None


def call_server(settings: Settings, path: str, body: BaseModel, *, timeout: float | None = None,
                notify: Callable[[str], None] = say) -> Any:
    """POST `body` to the server that owns the data dir and return its JSON; None when no server owns it
    (or it stopped before answering): the caller then does the work itself. A server that is still starting
    is waited for, with one line saying so, up to `index.wait_seconds`. `timeout` bounds the answer itself
    (None: a sync or a job takes as long as it takes)."""
    import httpx

    owner = serving_owner(settings)
    if owner is None:
        return None
    wait = settings.index.wait_seconds
    deadline, told = time.monotonic() + wait, False
    while True:
        try:
            response = httpx.post(owner.url + path, json=body.model_dump(mode="json"), timeout=httpx.Timeout(
                timeout, connect=5.0), headers={"Authorization": f"Bearer {owner.token}"})
            break
        except httpx.ConnectError:
            if serving_owner(settings) != owner:
                return None  # it stopped: the index is free again
            if time.monotonic() >= deadline:
                raise IndexBusy(f"{owner.describe()} holds the index but does not answer after {wait:.0f}s: "
                                "check its log, or stop it and run this again") from None
            if not told:
                notify(f"index is held by {owner.describe()}, which is starting; waiting… (Ctrl-C to stop)")
                told = True
            time.sleep(0.5)
        except httpx.TimeoutException:
            raise IndexBusy(f"{owner.describe()} did not answer within {timeout}s") from None
    if response.status_code == 200:
        return response.json()
    raise _server_error(owner, response.status_code, response)


def _server_error(owner: ServerOwner, status: int, response: Any) -> OncoLitError:
    """The server's `{"error", "detail"}` as the error the command would have raised itself."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:300]
    message = detail if isinstance(detail, str) else f"{detail}"
    if status == 404:
        return RecordNotFound(message)
    if status in (400, 422):
        return UsageError(message)
    if status in (401, 403):
        return OncoLitError(f"{owner.describe()} refused this command ({message}): was the server restarted by "
                            "another user?")
    return OncoLitError(f"{message} (from {owner.describe()})")
