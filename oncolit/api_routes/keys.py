"""How the API takes keys, declared once for OpenAPI, and the check `/ask` and `/search` make when
`serve.require_key` is on.

A key travels as `Authorization: Bearer <key>` or as `X-API-Key: <key>` (never in the URL: URLs get logged).
Both are declared as security schemes (`BEARER`, `API_KEY`), so /openapi.json lists them under
`components.securitySchemes` and each protected route under `security`, and Swagger UI's "Authorize"
button sends them. The schemes do no checking themselves (`auto_error=False`): the routes' own checks
(`oncolit.web.deps.api_user`, `oncolit.api_routes.local.authorised`, `key_required` here) decide.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ingest.curation import User
from oncolit.api_routes.deps import in_thread, resources

if TYPE_CHECKING:
    from oncolit.web.throttle import KeyThrottle

BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="An OncoLit API key (`oncolit users key <name>`): `Authorization: Bearer <key>`.")
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                       description="The same API key in an `X-API-Key` header.")


def token_of(bearer: HTTPAuthorizationCredentials | None, header: str | None) -> str | None:
    """The key from either scheme (the bearer one first), as the routes accept it."""
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip()
    return header.strip() if header and header.strip() else None


def key_required(role: str, throttle: KeyThrottle) -> Callable[..., Awaitable[User]]:
    """A dependency: a valid key of a user who may act as `role`, else 401 (no or a bad key) or 403. Failed
    checks count against the client in `throttle` (429 with Retry-After past its limit, before any scrypt)."""

    async def dependency(request: Request, bearer: HTTPAuthorizationCredentials | None = Security(BEARER),
                         header: str | None = Security(API_KEY)) -> User:
        token = token_of(bearer, header)
        if not token:
            raise HTTPException(401, "this server needs an API key for this route (serve.require_key): send "
                                     "`Authorization: Bearer <key>`", headers={"WWW-Authenticate": "Bearer"})
        client = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(client)
        if wait is not None:
            raise HTTPException(429, f"too many failed API-key checks from this address; retry in {wait} s",
                                headers={"Retry-After": str(wait)})
        found = await in_thread(resources(request).curation.authenticate, token)
        if found is None:
            throttle.failed(client)
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        user: User = found[0]
        if not user.can(role):  # type: ignore[arg-type]
            raise HTTPException(403, f"this needs a {role} key; yours is a {user.role}'s")
        return user

    return dependency
