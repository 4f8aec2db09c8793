"""What the curation routes share: the catalog they act on, authentication by API key (JSON API) or
session cookie (web pages), role checks, and error mapping.

The catalog is the app's (`app.state.resources.catalog`, opened by `oncolit.api`) when there is one;
otherwise the router opens its own from settings on first use and closes it when the app stops.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request

from ingest.catalog import Catalog
from ingest.curation import Curation, CurationError, User
from ingest.curation.service import EvidenceFn
from ingest.errors import RecordNotFound
from oncolit.http_errors import http_status
from oncolit.resources import Resources
from oncolit.settings import Settings

SESSION_COOKIE = "oncolit_session"
PAGES = "/librarian"


def app_resources(request: Request) -> Resources | None:
    """The app's shared resources (`oncolit.api.create_app` builds them at startup), if it has them."""
    resources = getattr(request.app.state, "resources", None)
    return resources if isinstance(resources, Resources) else None


class WebState:
    def __init__(self, settings: Settings | None, catalog: Catalog | None, evidence: EvidenceFn | None):
        self.settings = settings
        self._given = catalog
        self._own: Catalog | None = None
        self._evidence = evidence
        self._curations: dict[int, Curation] = {}
        self._lock = threading.Lock()

    def catalog(self, request: Request) -> Catalog:
        resources = app_resources(request)
        if resources is not None:
            return resources.catalog
        if self._given is not None:
            return self._given
        with self._lock:
            if self._own is None:
                settings = self.settings_for(request)
                settings.ensure_data_dir()
                self._own = Catalog(settings.resolved_catalog_url)
            return self._own

    def settings_for(self, request: Request) -> Settings:
        resources = app_resources(request)
        if resources is not None:
            return resources.settings
        if self.settings is None:
            self.settings = Settings()
        return self.settings

    def curation(self, request: Request) -> Curation:
        catalog = self.catalog(request)
        key = id(catalog)
        with self._lock:
            cur = self._curations.get(key)
            if cur is None or cur.catalog is not catalog:
                cur = self._curations[key] = Curation(catalog, evidence=self._evidence)
            return cur

    def close(self) -> None:
        with self._lock:
            if self._own is not None:
                self._own.close()
                self._own = None
            self._curations.clear()


def bearer(request: Request) -> str | None:
    """The API key from `Authorization: Bearer …` or `X-API-Key` (never from the URL: URLs get logged)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key") or None


def api_user(state: WebState, request: Request, role: str) -> User:
    token = bearer(request)
    if not token:
        raise HTTPException(401, "an API key is needed: send `Authorization: Bearer <key>`",
                            headers={"WWW-Authenticate": "Bearer"})
    found = state.curation(request).authenticate(token)
    if found is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    user: User = found[0]
    if not user.can(role):  # type: ignore[arg-type]
        raise HTTPException(403, f"this needs a {role} key; yours is a {user.role}'s")
    return user


@contextmanager
def http_errors() -> Iterator[None]:
    """Curation errors (and unknown records) as `HTTPException`s, with the status of the one table in
    `oncolit.http_errors`: 403 not allowed, 404 no such thing, 400 a request that cannot be carried out.
    Other OncoLit errors reach the app's handler, which uses the same table."""
    try:
        yield
    except (CurationError, RecordNotFound) as exc:
        raise HTTPException(http_status(exc)[0], str(exc)) from exc
