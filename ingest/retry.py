"""Retry and rate-limit policy shared by every HTTP source.

Sources classify each failure as retryable or not; this module decides how long to wait
(exponential back-off, honouring Retry-After) and keeps requests under the documented rate.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from ingest.errors import SourceRequestError, SourceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class Retryable(Exception):
    """Raised inside an attempt to ask for another try; `retry_after` (s) overrides the back-off."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def wait_for(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        return min(self.backoff_base * (2 ** (attempt - 1)), self.backoff_max)

    def call(self, what: str, attempt_fn: Callable[[], T]) -> T:
        """Run `attempt_fn` until it returns, retrying on `Retryable`; then raise SourceUnavailable."""
        last: Retryable | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                return attempt_fn()
            except Retryable as exc:
                last = exc
                if attempt == self.max_attempts:
                    break
                delay = self.wait_for(attempt, exc.retry_after)
                log.warning("retrying %s after %s (attempt %d/%d, waiting %.1fs)",
                            what, exc.reason, attempt, self.max_attempts, delay)
                self.sleep(delay)
        raise SourceUnavailable(
            f"{what} failed after {self.max_attempts} attempts (last: {last.reason if last else 'unknown'}); "
            "nothing was written for this batch. Check the source's status or the base URL, then run again.")


class RateLimiter:
    """At most `rate` calls per second across threads (NCBI: 3/s, 10/s with an API key)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._sleep(self._next - now)
                now = self._next
            self._next = now + self.interval


def classify_status(status: int, retry_after_header: str | None, what: str) -> None:
    """Raise Retryable for 429/5xx, SourceRequestError for other 4xx; return for success codes."""
    if status < 400:
        return
    if status == 429 or status >= 500:
        raise Retryable(f"HTTP {status}", parse_retry_after(retry_after_header))
    raise SourceRequestError(f"{what} was refused with HTTP {status}: check the query and settings.")
