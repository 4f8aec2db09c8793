"""GET /healthz: is the service up, and what is it serving."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from oncolit import __version__
from oncolit.api_routes.deps import in_worker, resources

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="Liveness and what is loaded")
async def healthz(request: Request) -> dict[str, Any]:
    res = resources(request)
    points = await in_worker(request, res.index.store.count)
    return {"status": "ok", "version": __version__, "collection": res.index.collection, "points": points,
            "llm": res.llm.name, "generates": res.llm.capabilities.generation}
