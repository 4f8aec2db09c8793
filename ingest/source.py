"""The `Source` protocol every ingester implements, and the values that cross it.

A source turns "what changed in this window for this saved search" into batches of parsed records,
each carried with the raw bytes it came from (the catalog keeps them compressed, so a parser fix
can re-derive records without refetching). A batch is the unit the catalog commits atomically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ingest.records import Article, Deletion, Trial, Unreadable


@dataclass(frozen=True)
class ParsedItem:
    """One parsed record (Article, Trial or Deletion) with its raw payload and its format; or an
    `Unreadable` element, which the catalog quarantines."""

    record: Article | Trial | Deletion | Unreadable
    raw: bytes
    raw_format: str  # "pubmed-xml" | "ctgov-json"


@dataclass(frozen=True)
class Window:
    """Inclusive calendar-day window. Sources speak days: E-utilities and CT.gov dates have no time."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True)
class Query:
    """What to ask a source: a saved search's query text plus source-specific parameters."""

    text: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Batch:
    items: list[ParsedItem]
    # Source-specific progress info (e.g. ids requested vs returned), for logs and run stats.
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Source(Protocol):
    """`fetch_changes` yields batches of everything new or revised in `window` matching `query`."""

    name: str

    def count(self, query: Query, window: Window) -> int:
        """How many records the query returns for the window (a dry-run preview)."""
        ...

    def fetch_changes(self, query: Query, window: Window) -> Iterator[Batch]:
        ...
