"""GET /records/{id}: one catalog record, as `oncolit records show --json` prints it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from oncolit.api_routes.deps import in_thread, resources
from oncolit.ids import normalise_id

router = APIRouter(tags=["records"])


@router.get("/records/{record_id}", summary="A catalog record: fields, versions, state, links",
            responses={404: {"description": "No such record", "content": {"application/json": {"example": {
                "error": "not_found", "detail": "no record 'pubmed:1' in the catalog"}}}}})
async def get_record(record_id: str, request: Request) -> dict[str, Any]:
    """Accepts `pubmed:22663011`, `PMID:22663011`, `22663011`, `ctgov:NCT02576665` or `NCT02576665`.
    A record a librarian excluded is still served by id (it is in the catalog) but says so: `curation.excluded`
    and the reason; search, answers and digests never show it."""
    return await in_thread(_record, resources(request), normalise_id(record_id))


def _record(res: Any, rid: str) -> dict[str, Any]:
    data = res.catalog.get(rid)
    verdict = res.curation.verdict(rid)
    return {**data, "curation": {"excluded": verdict.excluded, "reason": verdict.reason or None}}
