"""`KeyThrottle`: failed API-key checks counted per client, so guessing keys cannot burn the server's CPU.

Each key check that reaches the database costs one scrypt (~30 ms, 16 MiB). A client whose checks failed
`limit` times within `window` seconds gets 429 with `Retry-After` before any scrypt runs, until its oldest
failure leaves the window. Successful checks are not counted (and are cached by hash in
`ingest.curation.access.VerifiedKeys`, so a busy honest client pays scrypt once a minute, not per request).

A client is its address as the server sees it (`request.client.host`); behind a reverse proxy that is the
proxy, so the proxy should do its own limiting (or the server be started with uvicorn's `--proxy-headers`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

MAX_CLIENTS = 10_000  # clients tracked at once; past it the least recently failing are forgotten


class KeyThrottle:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try a key again, or None when it may now."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None or len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if times is None:
                times = self._failures[client] = deque()
            times.append(now)
            while len(times) > self.limit:
                times.popleft()
            self._failures[client] = self._failures.pop(client)  # most recent last, for the bound below
            while len(self._failures) > MAX_CLIENTS:
                del self._failures[next(iter(self._failures))]

    def _recent(self, client: str, now: float) -> deque[float] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times
