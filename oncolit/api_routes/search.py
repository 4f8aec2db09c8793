"""GET /search: ranked records with the passage that matched (the `oncolit search` of the API)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from oncolit.api_routes.deps import Filters, in_worker, resources

router = APIRouter(tags=["search"])


@router.get("/search", summary="Hybrid search over the index")
async def search(request: Request,
                 q: str = Query(..., min_length=1, max_length=1000, description="What to look for."),
                 type: Literal["article", "trial"] | None = Query(None, description="Record type."),
                 since: dt.date | None = Query(None, description="Published on or after (YYYY-MM-DD)."),
                 until: dt.date | None = Query(None, description="Published on or before (YYYY-MM-DD)."),
                 design: list[str] = Query([], description="Study design; repeatable."),
                 limit: int = Query(10, ge=1, le=100, description="How many records."),
                 mode: Literal["hybrid", "dense", "sparse"] = Query("hybrid")) -> dict[str, Any]:
    filters = Filters(type=type, since=since, until=until, design=design).search_filter()
    hits = await in_worker(request, resources(request).searcher.search, q, filters, limit, mode)
    return {"query": q, "results": [h.as_dict() for h in hits]}
