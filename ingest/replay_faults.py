"""Fault injection for the replay server: what a flaky or hostile upstream does, on demand.

A `FaultPlan` is shared between a test and a running `ReplayServer`. The server asks it, once per
request, which fault (if any) to apply, and records every request it saw so tests can assert on
retries ("efetch was asked three times"). Faults are keyed by *path prefix* relative to the service
root: "esearch" and "efetch" for E-utilities (the `.fcgi` name), "studies" for CT.gov (which also
matches single-study paths "studies/NCT..."; use "studies/" for those alone).

Three ways to schedule, checked in this order for each request:
    plan.on_request("efetch", 3, status(500))   # exactly the 3rd efetch request fails
    plan.add("efetch", status(429, retry_after=2), truncate(0.5))   # next requests, one each
    plan.always("esearch", status(503))          # every request from now on (until `clear`)
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "delay", "truncate", "malformed", "billion_laughs", "xxe", "bad_json", "drop_records"]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour. Build with the helper functions below, not directly."""

    kind: FaultKind
    status: int = 200
    retry_after: str | None = None
    body: bytes | None = None
    seconds: float = 0.0
    fraction: float = 1.0
    keep_length: bool = True
    count: int = 0


def status(code: int, retry_after: float | str | None = None, body: bytes | None = None) -> Fault:
    """Answer with HTTP `code` (429, 500, 503, 400 ...), optionally with a Retry-After header."""
    header = None if retry_after is None else _retry_after_text(retry_after)
    return Fault("status", status=code, retry_after=header, body=body)


def delay(seconds: float) -> Fault:
    """Wait before answering normally; longer than the client's timeout, it is a timeout."""
    return Fault("delay", seconds=seconds)


def truncate(fraction: float = 0.5, *, keep_length: bool = True) -> Fault:
    """Send only the first `fraction` of the real body, then close the connection.

    keep_length=True declares the full Content-Length (the client's HTTP layer sees a short read);
    keep_length=False declares the cut length, so only the body parser can tell something is wrong.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError("truncate fraction must be in [0, 1)")
    return Fault("truncate", fraction=fraction, keep_length=keep_length)


def malformed() -> Fault:
    """HTTP 200 with bytes that are not the promised format."""
    return Fault("malformed")


def billion_laughs() -> Fault:
    """HTTP 200 with an XML document that defines exponentially expanding entities."""
    return Fault("billion_laughs")


def xxe() -> Fault:
    """HTTP 200 with an XML document whose entity points at a local file (external entity)."""
    return Fault("xxe")


def bad_json() -> Fault:
    """HTTP 200, Content-Type application/json, with a body that is not valid JSON."""
    return Fault("bad_json")


def drop_records(count: int = 1) -> Fault:
    """efetch only: answer normally but leave out the last `count` records, as NCBI sometimes does."""
    if count < 1:
        raise ValueError("drop_records count must be at least 1")
    return Fault("drop_records", count=count)


def _retry_after_text(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class SeenRequest:
    """One request as the server received it, for assertions in tests."""

    path: str  # relative to the service root: "esearch.fcgi", "studies", "studies/NCT01234567"
    method: str
    params: dict[str, str]
    fault: Fault | None


@dataclass
class FaultPlan:
    """Thread-safe schedule of faults per path prefix, and the log of requests seen."""

    _queues: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    _nth: dict[str, dict[int, Fault]] = field(default_factory=lambda: defaultdict(dict))
    _always: dict[str, Fault] = field(default_factory=dict)
    _seen: list[SeenRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, prefix: str, *faults: Fault) -> FaultPlan:
        """Queue faults for the next requests under `prefix`, one per request, in order."""
        with self._lock:
            self._queues[prefix].extend(faults)
        return self

    def on_request(self, prefix: str, n: int, fault: Fault) -> FaultPlan:
        """Apply `fault` to the `n`-th (1-based, counted since the plan was made) request under `prefix`."""
        if n < 1:
            raise ValueError("request numbers start at 1")
        with self._lock:
            self._nth[prefix][n] = fault
        return self

    def always(self, prefix: str, fault: Fault) -> FaultPlan:
        """Apply `fault` to every request under `prefix` until `clear()`."""
        with self._lock:
            self._always[prefix] = fault
        return self

    def clear(self) -> None:
        """Drop every scheduled fault (the request log stays)."""
        with self._lock:
            self._queues.clear()
            self._nth.clear()
            self._always.clear()

    def take(self, path: str, method: str, params: dict[str, str]) -> Fault | None:
        """Record a request and return the fault to apply to it (called by the server)."""
        with self._lock:
            fault = self._choose(path)
            self._seen.append(SeenRequest(path, method, dict(params), fault))
            return fault

    def _choose(self, path: str) -> Fault | None:
        # Callers hold the lock. The request being chosen for is not yet in `_seen`.
        for prefix, by_number in self._nth.items():
            if path.startswith(prefix):
                number = self._count_locked(prefix) + 1
                if number in by_number:
                    return by_number.pop(number)
        for prefix, queue in self._queues.items():
            if path.startswith(prefix) and queue:
                return queue.popleft()
        for prefix, fault in self._always.items():
            if path.startswith(prefix):
                return fault
        return None

    def _count_locked(self, prefix: str) -> int:
        return sum(1 for seen in self._seen if seen.path.startswith(prefix))

    def count(self, prefix: str = "") -> int:
        """How many requests under `prefix` the server has seen (faulted ones included)."""
        with self._lock:
            return self._count_locked(prefix)

    def seen(self, prefix: str = "") -> list[SeenRequest]:
        """The requests under `prefix`, oldest first."""
        with self._lock:
            return [s for s in self._seen if s.path.startswith(prefix)]

    def pending(self) -> int:
        """Queued and numbered faults not yet applied (a test can assert they all fired)."""
        with self._lock:
            return sum(len(q) for q in self._queues.values()) + sum(len(d) for d in self._nth.values())


# --- hostile payloads --------------------------------------------------------------------------

GARBAGE = b"\x00\x8f<<PubmedArticleSet \xff\xfe not xml at all ]]>&&\x1b[0m</"


def billion_laughs_document(root: str) -> bytes:
    """The classic entity-expansion bomb (about 10^9 'lol's if a parser expands it)."""
    lines = ['<?xml version="1.0"?>', f"<!DOCTYPE {root} [", ' <!ENTITY lol "lol">']
    previous = "lol"
    for level in range(1, 10):
        name = f"lol{level}"
        lines.append(f' <!ENTITY {name} "{("&" + previous + ";") * 10}">')
        previous = name
    lines.append("]>")
    lines.append(_hostile_body(root, "&lol9;"))
    return "\n".join(lines).encode()


def xxe_document(root: str) -> bytes:
    """An external-entity document that would pull a local file (and a network URL) into the text."""
    return (
        '<?xml version="1.0"?>\n'
        f"<!DOCTYPE {root} [\n"
        ' <!ENTITY xxe SYSTEM "file:///etc/passwd">\n'
        ' <!ENTITY remote SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
        "]>\n" + _hostile_body(root, "&xxe;&remote;")
    ).encode()


def _hostile_body(root: str, payload: str) -> str:
    """A body shaped like the endpoint's real answer, with the entity where a parser reads text."""
    if root == "eSearchResult":
        return (f"<eSearchResult><Count>1</Count><RetMax>1</RetMax><RetStart>0</RetStart>"
                f"<IdList><Id>1</Id></IdList><QueryTranslation>{payload}</QueryTranslation></eSearchResult>")
    return (f"<{root}><PubmedArticle><MedlineCitation><PMID Version=\"1\">1</PMID><Article>"
            f"<ArticleTitle>{payload}</ArticleTitle></Article></MedlineCitation></PubmedArticle></{root}>")


BAD_JSON = b'{"studies": [{"protocolSection": {"identificationModule": {"nctId": "NCT0'
