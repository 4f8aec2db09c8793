"""The HTTP API: `create_app(settings)` builds the FastAPI app (OpenAPI docs at /docs and /redoc, their
assets served locally by `oncolit.api_routes.docs`, so they work offline).

    POST /ask            a cited answer (or insufficient evidence + the closest records)
    GET  /search         ranked records with the matching passage
    GET  /records/{id}   one catalog record
    GET  /healthz        liveness and what is loaded
    POST /local/...      the CLI's commands while `oncolit serve` owns their data dir (`oncolit.api_routes.local`)

Serve it with `oncolit serve` (uvicorn). The app's `oncolit.resources.Resources` (catalog, curation,
index, searcher, LLM) are built once, when the app starts, and closed when it stops. Search and ask run on
a pool of `serve.workers` threads (at most `serve.max_queued` waiting, then 503); health checks, record
reads and the librarian routes never queue behind them (see `oncolit.api_routes`). Bodies over
`serve.max_body_bytes` get 413; every response carries `nosniff` and, unless it sets its own,
`Cache-Control: no-store` (`oncolit.api_routes.middleware`). Routes live in `oncolit.api_routes`, one
module per area; add a module with a `router` and list it in `ROUTERS`.

Keys: `Authorization: Bearer <key>` or `X-API-Key`, declared as OpenAPI security schemes
(`oncolit.api_routes.keys`). The curation routes and /local always need one; /ask and /search only with
`serve.require_key` (a reader's key or above).

Errors: OncoLit's own errors become JSON `{"error": <kind>, "detail": <one line>}` with the status of
the one table in `oncolit.http_errors` (404 for a record that does not exist, 409 for a name that is
taken, 503 for a model that cannot run).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ingest.errors import OncoLitError
from oncolit import __version__
from oncolit.api_routes import ask, docs, health, local, records, search
from oncolit.api_routes.deps import WorkerPool
from oncolit.api_routes.health import PointCount
from oncolit.api_routes.keys import key_required
from oncolit.api_routes.middleware import Guard
from oncolit.http_errors import error_body
from oncolit.owner import ServerOwner
from oncolit.resources import open_resources
from oncolit.settings import Settings
from oncolit.web.throttle import KeyThrottle
from synthesis.llm import LLM

ROUTERS = (ask.router, search.router, records.router, health.router, local.router)
KEYED = (ask.router, search.router)  # behind a reader's key when `serve.require_key`


def create_app(settings: Settings, *, llm: LLM | None = None, owner: ServerOwner | None = None) -> FastAPI:
    """The API over the catalog and index that `settings` point at. An `llm` passed in is used
    instead of building one from settings (and stays the caller's to close). Everything is built at startup
    on a worker thread, before the first request, so no request pays for loading a model.
    `owner` (from `oncolit serve`'s claim on the data dir): this process owns the index, runs the jobs of the
    commands that ask it to (`/local/...`, with its token) and, when `owner.scheduler`, the scheduler."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        loop = asyncio.get_running_loop()
        switch = sys.getswitchinterval()
        sys.setswitchinterval(settings.serve.switch_interval_ms / 1000)
        pool = WorkerPool(settings.serve.workers, settings.serve.max_queued)
        stack, jobs_stack = ExitStack(), ExitStack()
        try:
            app.state.resources = await loop.run_in_executor(
                pool.executor, lambda: stack.enter_context(open_resources(settings, llm=llm)).load())
            app.state.worker = pool
            app.state.point_count = PointCount(await loop.run_in_executor(
                pool.executor, app.state.resources.index.store.count))
            app.state.owner = owner
            if owner is not None:  # off the worker: a job it waits for at the end sends work to the worker
                serving = local.serving(settings, app.state.resources, pool.executor, scheduler=owner.scheduler)
                await loop.run_in_executor(None, lambda: jobs_stack.enter_context(serving))
            yield
        finally:
            await loop.run_in_executor(None, jobs_stack.close)
            await loop.run_in_executor(pool.executor, stack.close)
            pool.shutdown()
            sys.setswitchinterval(switch)

    app = FastAPI(title="OncoLit", version=__version__, lifespan=lifespan,
                  description="A living, searchable, cited oncology evidence base. Every citation in an answer "
                              "resolves to a catalog record, and every number in a generated sentence appears "
                              "in the cited record's text.",
                  docs_url=None, redoc_url=None)  # FastAPI's would load their assets from a CDN
    app.include_router(docs.router(app))
    serve = settings.serve
    reader = key_required("reader", KeyThrottle(serve.key_failures, serve.key_failure_window_seconds))
    for router in ROUTERS:
        keyed = serve.require_key and router in KEYED
        app.include_router(router, dependencies=[Depends(reader)] if keyed else None)
    from oncolit.web import create_router  # librarian JSON routes and pages share the app's resources

    app.include_router(create_router(settings))
    app.add_middleware(Guard, max_body_bytes=settings.serve.max_body_bytes)

    @app.exception_handler(OncoLitError)
    async def _oncolit_error(request: Request, exc: OncoLitError) -> JSONResponse:
        status, body = error_body(exc)
        return JSONResponse(body, status_code=status)

    return app
