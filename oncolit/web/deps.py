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
from ingest.curation.access import VerifiedKeys
from ingest.curation.service import EvidenceFn
from ingest.errors import AlreadyExists, RecordNotFound
from oncolit.http_errors import http_status
from oncolit.resources import Resources
from oncolit.settings import Settings
from oncolit.web.throttle import KeyThrottle

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
        self._verified: VerifiedKeys | None = None
        self._throttle: KeyThrottle | None = None

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
        verified = self.verified_keys(request)
        with self._lock:
            cur = self._curations.get(key)
            if cur is None or cur.catalog is not catalog:
                cur = self._curations[key] = Curation(catalog, evidence=self._evidence, verified_keys=verified)
            return cur

    def verified_keys(self, request: Request) -> VerifiedKeys:
        """Keys that passed scrypt lately (`serve.key_cache_seconds`), shared by every route of this app."""
        if self._verified is None:
            self._verified = VerifiedKeys(self.settings_for(request).serve.key_cache_seconds)
        return self._verified

    def throttle(self, request: Request) -> KeyThrottle:
        """Failed key checks per client (`serve.key_failures` per `serve.key_failure_window_seconds`)."""
        if self._throttle is None:
            serve = self.settings_for(request).serve
            self._throttle = KeyThrottle(serve.key_failures, serve.key_failure_window_seconds)
        return self._throttle

    def check_key(self, request: Request, token: str | None) -> tuple[User, str] | None:
        """`Curation.authenticate` behind the per-client throttle: 429 with Retry-After for a client that
        failed too often (before any scrypt runs); a failed check counts against its client."""
        throttle, client = self.throttle(request), client_of(request)
        wait = throttle.retry_after(client)
        if wait is not None:
            raise HTTPException(429, f"too many failed API-key checks from this address; retry in {wait} s",
                                headers={"Retry-After": str(wait)})
        found: tuple[User, str] | None = self.curation(request).authenticate(token)
        if found is None:
            throttle.failed(client)
        return found

    def close(self) -> None:
        with self._lock:
            if self._own is not None:
                self._own.close()
                self._own = None
            self._curations.clear()


def client_of(request: Request) -> str:
    """Who the throttle counts: the peer address (the proxy's, behind one)."""
    return request.client.host if request.client else "unknown"


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
    found = state.check_key(request, token)
    if found is None:
        raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    user: User = found[0]
    if not user.can(role):  # type: ignore[arg-type]
        raise HTTPException(403, f"this needs a {role} key; yours is a {user.role}'s")
    return user


@contextmanager
def http_errors() -> Iterator[None]:
    """Curation errors (and unknown records) as `HTTPException`s, with the status of the one table in
    `oncolit.http_errors`: 403 not allowed, 404 no such thing, 409 a name taken, 400 a request that cannot be
    carried out.
    Other OncoLit errors reach the app's handler, which uses the same table."""
    try:
        yield
    except (CurationError, RecordNotFound, AlreadyExists) as exc:
        raise HTTPException(http_status(exc)[0], str(exc)) from exc
