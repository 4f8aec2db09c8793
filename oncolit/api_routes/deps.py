"""Shared route plumbing: the app's resources, the worker pool, request models for filters."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal, TypeVar

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

from index.store import SearchFilter
from oncolit.resources import Resources
from oncolit.via_server import search_filter_of

T = TypeVar("T")


def resources(request: Request) -> Resources:
    """The app's resources, built at startup (`oncolit.api.create_app`)."""
    res: Resources = request.app.state.resources
    return res


class WorkerPool:
    """The threads that run search and ask (`serve.workers` of them), with a bound on what may wait.

    Heavy calls (query embedding, ranking, findings models, the LLM) queue here and nowhere else, so the
    event loop and the cheap routes never wait behind them. Past `max_queued` calls waiting for a thread,
    a new one is refused at once (503 with Retry-After) instead of growing every caller's latency."""

    def __init__(self, workers: int, max_queued: int) -> None:
        self.workers = workers
        self.max_queued = max_queued
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="oncolit-worker")
        self.in_flight = 0  # read and changed only on the event loop's thread

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.in_flight >= self.workers + self.max_queued:
            raise HTTPException(503, f"the server is busy ({self.in_flight} searches/answers running or waiting); "
                                     "retry shortly", headers={"Retry-After": "1"})
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, partial(fn, *args, **kwargs))
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True)


def worker(request: Request) -> WorkerPool:
    pool: WorkerPool = request.app.state.worker
    return pool


async def in_worker(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking, heavy `fn` (a search, an answer) on the worker pool."""
    return await worker(request).run(fn, *args, **kwargs)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking but cheap `fn` (a catalog read, a point count) on the server's general thread pool, the
    one the librarian routes use: it never waits behind a search or an answer."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


class Filters(BaseModel):
    """What records an answer or a search may draw on. Empty fields do not filter."""

    since: dt.date | None = Field(None, description="Published (trials: first posted) on or after this day.")
    until: dt.date | None = Field(None, description="Published on or before this day.")
    type: Literal["article", "trial"] | None = Field(None, description="Record type.")
    design: list[str] = Field([], description="Study designs (rct, meta_analysis, cohort, ...), any of.")
    status: list[str] = Field([], description="Trial statuses (RECRUITING, COMPLETED, ...), any of.")
    phase: list[str] = Field([], description="Trial phases (PHASE2, PHASE3, ...), any of.")
    language: list[str] = Field([], description="Language codes (eng, fre, ...), any of.")
    site: list[str] = Field([], description="Cancer sites / MeSH terms, any of.")
    max_level: int | None = Field(None, ge=1, description="Keep evidence levels up to this one (1 = strongest; "
                                  "the number of the grade: 2 keeps 1a-2b).")
    include_retracted: bool = Field(False, description="Also draw on retracted records (flagged).")

    def search_filter(self) -> SearchFilter:
        return search_filter_of(self)
