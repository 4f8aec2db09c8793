"""GET /search: ranked records with the passage that matched (the `oncolit search` of the API)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from index.store import SearchFilter
from oncolit.api_routes.deps import Filters, in_worker, resources
from oncolit.resources import Resources

router = APIRouter(tags=["search"])


@router.get("/search", summary="Hybrid search over the index", response_model=None)
async def search(request: Request,
                 q: str = Query(..., min_length=1, max_length=1000, description="What to look for."),
                 type: Literal["article", "trial"] | None = Query(None, description="Record type."),
                 since: dt.date | None = Query(None, description="Published on or after (YYYY-MM-DD)."),
                 until: dt.date | None = Query(None, description="Published on or before (YYYY-MM-DD)."),
                 design: list[str] = Query([], description="Study design; repeatable."),
                 limit: int = Query(10, ge=1, le=100, description="How many records."),
                 mode: Literal["hybrid", "dense", "sparse"] = Query("hybrid")) -> JSONResponse:
    filters = Filters(type=type, since=since, until=until, design=design).search_filter()
    return await in_worker(request, _search, resources(request), q, filters, limit, mode)


def _search(res: Resources, q: str, filters: SearchFilter, limit: int, mode: str) -> JSONResponse:
    """On the worker: the search and its JSON encoding, so the event loop only sends bytes."""
    hits = res.searcher.search(q, filters, limit, mode)
    body: dict[str, Any] = {"query": q, "results": [h.as_dict() for h in hits]}
    return JSONResponse(body)
