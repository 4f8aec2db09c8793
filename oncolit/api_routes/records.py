"""GET /records/{id}: one catalog record, as `oncolit records show --json` prints it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from oncolit.api_routes.deps import in_worker, resources
from oncolit.ids import normalise_id

router = APIRouter(tags=["records"])


@router.get("/records/{record_id}", summary="A catalog record: fields, versions, state, links",
            responses={404: {"description": "No such record", "content": {"application/json": {"example": {
                "error": "not_found", "detail": "no record 'pubmed:1' in the catalog"}}}}})
async def get_record(record_id: str, request: Request) -> dict[str, Any]:
    """Accepts `pubmed:22663011`, `PMID:22663011`, `22663011`, `ctgov:NCT02576665` or `NCT02576665`."""
    return await in_worker(request, resources(request).catalog.get, normalise_id(record_id))
