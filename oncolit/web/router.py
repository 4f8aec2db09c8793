"""`create_router(settings)`: the curation JSON API (/curation/…), the librarian pages (/librarian/…) and the
pages digests link to (/digests/…, /unsubscribe/…) as one FastAPI `APIRouter`, for `oncolit.api.create_app` to include:

    app.include_router(create_router(settings))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter

from ingest.catalog import Catalog
from ingest.curation.service import EvidenceFn
from oncolit.resources import grading_evidence
from oncolit.settings import Settings
from oncolit.web import curation_api, digest_pages, pages
from oncolit.web.deps import WebState


def create_router(settings: Settings | None = None, *, catalog: Catalog | None = None,
                  evidence: EvidenceFn | None = grading_evidence) -> APIRouter:
    """Curation routes over the app's catalog (`app.state.resources.catalog`) when it has one, else over
    `catalog`, else over one opened from `settings` on first use (and closed when the app stops).
    `evidence` grades queue records for the evidence-level sort (None: no evidence levels)."""
    state = WebState(settings, catalog, evidence)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            state.close()

    router = APIRouter(lifespan=lifespan)
    router.include_router(curation_api.build(state))
    router.include_router(pages.build(state))
    router.include_router(digest_pages.build(state))  # /digests/…, /unsubscribe/…: signed links, no login
    return router
