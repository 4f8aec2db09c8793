"""GET /healthz: is the service up, and what is it serving. It must answer at once under any load (a load
balancer takes a slow answer for a dead server), so it never waits for the search/ask workers: the point
count runs on the general thread pool, and when the store takes longer than `COUNT_WAIT` (an index sync
writing, a long scan) the last count is reported with `points_stale: true`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from oncolit import __version__
from oncolit.api_routes.deps import resources, worker

router = APIRouter(tags=["service"])
COUNT_WAIT = 0.02  # seconds /healthz waits for a fresh point count


class PointCount:
    """The index's point count, refreshed by at most one call at a time, never waited on for long."""

    def __init__(self, initial: int | None = None) -> None:
        self.last = initial
        self._running: asyncio.Future[int] | None = None

    async def get(self, count: Any) -> tuple[int | None, bool]:
        """(points, stale): a fresh count if the store gives one within `COUNT_WAIT`, else the last one."""
        from starlette.concurrency import run_in_threadpool

        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(run_in_threadpool(count))
        try:
            self.last = await asyncio.wait_for(asyncio.shield(self._running), COUNT_WAIT)
            return self.last, False
        except TimeoutError:
            return self.last, True


@router.get("/healthz", summary="Liveness and what is loaded")
async def healthz(request: Request) -> dict[str, Any]:
    res = resources(request)
    counter: PointCount = request.app.state.point_count
    points, stale = await counter.get(res.index.store.count)
    pool = worker(request)
    return {"status": "ok", "version": __version__, "collection": res.index.collection, "points": points,
            "points_stale": stale, "llm": res.llm.name, "generates": res.llm.capabilities.generation,
            "workers": pool.workers, "busy": pool.in_flight}
