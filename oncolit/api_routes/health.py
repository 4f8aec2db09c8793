"""GET /healthz: is the service up, and what is it serving. It must answer at once under any load (a load
balancer takes a slow answer for a dead server), so it does no blocking work and waits for no thread: it
reports the point count last read, and starts a fresh read on the general thread pool when that one is
older than `REFRESH_SECONDS` (never waiting for it). `points_stale` is true while the count is older than
`STALE_SECONDS` (the store is slow to answer: an index sync writing, a long scan)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from oncolit import __version__
from oncolit.api_routes.deps import resources, worker

log = logging.getLogger(__name__)
router = APIRouter(tags=["service"])
REFRESH_SECONDS = 1.0
STALE_SECONDS = 10.0


class PointCount:
    """The index's point count, refreshed in the background by at most one read at a time."""

    def __init__(self, initial: int | None = None) -> None:
        self.last = initial
        self.read_at = time.monotonic() if initial is not None else 0.0
        self._running: asyncio.Task[None] | None = None

    def get(self, count: Callable[[], int]) -> tuple[int | None, bool]:
        """(points, stale) now; a refresh is started when due and not already running."""
        now = time.monotonic()
        if now - self.read_at > REFRESH_SECONDS and (self._running is None or self._running.done()):
            self._running = asyncio.ensure_future(self._refresh(count))
        return self.last, now - self.read_at > STALE_SECONDS

    async def _refresh(self, count: Callable[[], int]) -> None:
        from starlette.concurrency import run_in_threadpool

        try:
            self.last = await run_in_threadpool(count)
            self.read_at = time.monotonic()
        except Exception as exc:  # a failing store shows as a stale count; the next health check tries again
            log.warning("the point count for /healthz failed: %s", exc)


@router.get("/healthz", summary="Liveness and what is loaded")
async def healthz(request: Request) -> dict[str, Any]:
    res = resources(request)
    counter: PointCount = request.app.state.point_count
    points, stale = counter.get(res.index.store.count)
    pool = worker(request)
    return {"status": "ok", "version": __version__, "collection": res.index.collection, "points": points,
            "points_stale": stale, "llm": res.llm.name, "generates": res.llm.capabilities.generation,
            "workers": pool.workers, "busy": pool.in_flight}
