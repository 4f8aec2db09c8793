"""The HTTP API: `create_app(settings)` builds the FastAPI app (OpenAPI docs at /docs and /redoc).

    POST /ask            a cited answer (or insufficient evidence + the closest records)
    GET  /search         ranked records with the matching passage
    GET  /records/{id}   one catalog record
    GET  /healthz        liveness and what is loaded
    POST /local/...      the CLI's commands while `oncolit serve` owns their data dir (`oncolit.api_routes.local`)

Serve it with `oncolit serve` (uvicorn). The app's `oncolit.resources.Resources` (catalog, curation,
index, searcher, LLM) are built once, when the app starts, on the one worker thread that then runs
every blocking call (see `oncolit.api_routes`), and closed when it stops. Routes live in `oncolit.api_routes`, one module per area; add a module
with a `router` and list it in `ROUTERS`.

Errors: OncoLit's own errors become JSON `{"error": <kind>, "detail": <one line>}` with the status of
the one table in `oncolit.http_errors` (404 for a record that does not exist, 503 for a model that
cannot run).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ingest.errors import OncoLitError
from oncolit import __version__
from oncolit.api_routes import ask, health, local, records, search
from oncolit.http_errors import error_body
from oncolit.owner import ServerOwner
from oncolit.resources import open_resources
from oncolit.settings import Settings
from synthesis.llm import LLM

ROUTERS = (ask.router, search.router, records.router, health.router, local.router)


def create_app(settings: Settings, *, llm: LLM | None = None, owner: ServerOwner | None = None) -> FastAPI:
    """The API over the catalog and index that `settings` point at. An `llm` passed in is used
    instead of building one from settings (and stays the caller's to close). The embedder is always
    built here, on the worker thread: its SQLite cache may only be used by the thread that opened it.
    `owner` (from `oncolit serve`'s claim on the data dir): this process owns the index, runs the jobs of the
    commands that ask it to (`/local/...`, with its token) and, when `owner.scheduler`, the scheduler."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import asyncio

        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oncolit-api")
        stack, jobs_stack = ExitStack(), ExitStack()
        try:
            app.state.resources = await loop.run_in_executor(
                pool, lambda: stack.enter_context(open_resources(settings, llm=llm)).load())
            app.state.worker = pool
            app.state.owner = owner
            if owner is not None:  # off the worker: a job it waits for at the end sends work to the worker
                serving = local.serving(settings, app.state.resources, pool, scheduler=owner.scheduler)
                await loop.run_in_executor(None, lambda: jobs_stack.enter_context(serving))
            yield
        finally:
            await loop.run_in_executor(None, jobs_stack.close)
            await loop.run_in_executor(pool, stack.close)
            pool.shutdown(wait=True)

    app = FastAPI(title="OncoLit", version=__version__, lifespan=lifespan,
                  description="A living, searchable, cited oncology evidence base. Every citation in an answer "
                              "resolves to a catalog record, and every number in a generated sentence appears "
                              "in the cited record's text.")
    for router in ROUTERS:
        app.include_router(router)
    from oncolit.web import create_router  # librarian JSON routes and pages share the app's resources

    app.include_router(create_router(settings))

    @app.exception_handler(OncoLitError)
    async def _oncolit_error(request: Request, exc: OncoLitError) -> JSONResponse:
        status, body = error_body(exc)
        return JSONResponse(body, status_code=status)

    return app
