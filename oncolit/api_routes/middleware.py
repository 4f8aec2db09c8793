"""`Guard`: the ASGI layer in front of every route: request bodies are bounded, responses carry safe headers.

- A body larger than `serve.max_body_bytes` is refused with 413 before it is read into memory: at once when
  `Content-Length` says so, else as soon as the streamed (chunked) body passes the limit. Without it a 20 MB
  `/ask` body was read, parsed and answered.
- Every response gets `X-Content-Type-Options: nosniff`, and `Cache-Control: no-store` unless the route set
  its own (static files do): API JSON holds catalog data and, once, a new API key, which no browser or proxy
  cache should keep.

Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, so streamed bodies are counted as they arrive.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a streamed body passes the limit. An HTTPException, so a route reading its
    body (FastAPI re-raises these while parsing) answers 413; one that escapes is answered here."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (serve.max_body_bytes)")


class Guard:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                have = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((n, v) for n, v in DEFAULT_HEADERS if n not in have)]
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            await self._refuse(send_with_headers)
            return
        seen = 0

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(send_with_headers)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": "too_large", "detail": f"the request body is larger than "
                           f"{self.max_body_bytes} bytes (serve.max_body_bytes)"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers", [])
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
