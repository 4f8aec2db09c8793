"""/local/...: the routes `oncolit` commands use while this server owns their data dir, and the scheduler it runs.

    POST /local/search       `oncolit search --json`, exactly
    POST /local/ask          `oncolit ask --json`, exactly
    POST /local/index/sync   `oncolit index sync|rebuild --json`, run on the server's own index
    POST /local/index/verify `oncolit index verify [--repair] --json`, on the server's own index
    POST /local/jobs/run     one saved search's chain (`oncolit schedule run-once`), run in this process

Why: the embedded index has one writer (`oncolit.owner`); the server holds it, so the commands ask the server
(`oncolit.via_server`) instead of failing on Qdrant's write-ahead log. Each route answers with the same
function the command runs without a server, so the two paths cannot drift apart.

Who may call: the holder of the loopback token in `<data dir>/server.json` (0600: the server's own user), or
an admin API key (`Authorization: Bearer <key>`).

`serving(...)` is entered by the app's lifespan when `oncolit serve` owns the data dir: jobs of this process
then use the server's resources, and with `schedule.in_server` (or `serve --schedule`) the saved searches'
APScheduler jobs run here, in the background, on those resources.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Security

from oncolit import jobs
from oncolit.api_routes.deps import in_worker, resources
from oncolit.api_routes.keys import API_KEY, BEARER
from oncolit.owner import ServerOwner, serving_locally
from oncolit.resources import Resources
from oncolit.settings import Settings
from oncolit.via_server import (
    AskRequest,
    JobRequest,
    SearchRequest,
    SyncRequest,
    VerifyRequest,
    ask_payload,
    search_payload,
    verify_payload,
)

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from ingest.lock import ProcessLock

log = logging.getLogger(__name__)


def _token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else request.headers.get("x-api-key")


async def authorised(request: Request, _bearer: Any = Security(BEARER), _header: Any = Security(API_KEY)) -> None:
    """The owner file's token, or an admin API key; else 401/403."""
    token = _token(request)
    owner: ServerOwner | None = getattr(request.app.state, "owner", None)
    if token and owner is not None and secrets.compare_digest(token, owner.token):
        return
    if not token:
        raise HTTPException(401, "send the token of <data dir>/server.json or an admin key as "
                                 "`Authorization: Bearer <key>`", headers={"WWW-Authenticate": "Bearer"})
    found = await in_worker(request, resources(request).curation.authenticate, token)
    if found is None:
        raise HTTPException(401, "invalid or revoked key", headers={"WWW-Authenticate": "Bearer"})
    if not found[0].can("admin"):
        raise HTTPException(403, f"this needs an admin key; yours is a {found[0].role}'s")


router = APIRouter(prefix="/local", tags=["local commands"], dependencies=[Depends(authorised)])


@router.post("/search", summary="`oncolit search --json` on this server's index")
async def local_search(body: SearchRequest, request: Request) -> dict[str, Any]:
    return await in_worker(request, search_payload, resources(request).searcher, body)


@router.post("/ask", summary="`oncolit ask --json` on this server's index and model")
async def local_ask(body: AskRequest, request: Request) -> dict[str, Any]:
    return await in_worker(request, ask_payload, resources(request), body)


@router.post("/index/sync", summary="Sync (or rebuild) this server's index from the catalog")
async def local_sync(body: SyncRequest, request: Request) -> dict[str, Any]:
    res = resources(request)
    return await in_worker(request, jobs.sync_index, res.settings, res.catalog, res.index, full=body.full,
                           should_stop=jobs.STOP.is_set)


@router.post("/index/verify", summary="Compare this server's index with the catalog (and repair it)")
async def local_verify(body: VerifyRequest, request: Request) -> dict[str, Any]:
    res = resources(request)
    return await in_worker(request, verify_payload, res.catalog, res.index, body)


@router.post("/jobs/run", summary="Run one saved search's chain (ingest + follow-on steps) in this server")
async def local_job(body: JobRequest, request: Request) -> dict[str, Any]:
    # Not on the worker: the chain's index steps are sent to the worker themselves (`owner.local_index`).
    settings = resources(request).settings
    return await asyncio.get_running_loop().run_in_executor(
        None, lambda: jobs.run_job(body.search, settings, wait=body.wait))


@contextmanager
def serving(settings: Settings, res: Resources, executor: Executor, *, scheduler: bool) -> Iterator[None]:
    """This process owns the index: jobs use `res` on `executor`; with `scheduler`, the saved searches' jobs
    run here until the block ends (a running ingest stops after its batch, as under `oncolit schedule run`)."""
    with serving_locally(res, executor):
        started = _start_scheduler(settings) if scheduler else None
        try:
            yield
        finally:
            if started is not None:
                running, lock = started
                jobs.STOP.set()
                try:
                    running.shutdown(wait=True)
                finally:
                    jobs.STOP.clear()
                    lock.release()


def _start_scheduler(settings: Settings) -> tuple[BaseScheduler, ProcessLock] | None:
    from apscheduler.schedulers.background import BackgroundScheduler

    from ingest.catalog import Catalog
    from ingest.lock import LockBusy, ProcessLock
    from ingest.scheduler import build_scheduler, sync_jobs

    lock = ProcessLock(settings.ensure_data_dir() / "scheduler.lock")
    try:
        lock.acquire()
    except LockBusy as exc:
        log.warning("not running the scheduler in this server: one already runs (%s)", exc)
        return None
    s = settings.schedule
    scheduler = build_scheduler(settings.resolved_catalog_url, timezone=s.timezone,
                                misfire_grace_seconds=s.misfire_grace_seconds, scheduler_cls=BackgroundScheduler)
    try:
        scheduler.start(paused=True)
        with Catalog(settings.resolved_catalog_url) as catalog:
            report = sync_jobs(scheduler, catalog, s.ingest_cron, s.timezone)
        scheduler.resume()
    except BaseException:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        lock.release()
        raise
    log.warning("scheduler running in the server", extra={"jobs": report})
    return scheduler, lock
