"""Ingest runs: source batches (or files) -> catalog, with run records and watermarks.

The order of effects is the whole point: each batch commits atomically, and a saved search's
watermark moves only after every batch of its window has committed. A run that dies anywhere
leaves the watermark where it was, and the next run redoes the window; upserts are idempotent,
so redoing costs time, never correctness.

A record the catalog cannot store (a poison record: a year 0 date) does not fail its batch: it is
quarantined raw with its error, the run ends `partial` and lists it, and the watermark still moves,
because the record is kept and retried at the start of every later run of its source
(`ingest.quarantine`), while holding the watermark would only fetch the same bad bytes again.
Records the source listed but never delivered are different: nothing of them is kept, so they
hold the watermark.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.catalog import Catalog, Quarantined
from ingest.curation import evaluate_batch
from ingest.errors import MalformedPayload, OncoLitError, PartialRun, UsageError
from ingest.quarantine import RetryOutcome, retry_quarantine
from ingest.source import Batch, ParsedItem, Query, Source, Window


class IngestInterrupted(OncoLitError):
    """A stop was requested; the batches before it are committed and the watermark did not move."""

    exit_code = 3  # part of the window may be committed; the next run finishes it

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, Counter[str]], None]  # (items in this batch, counts so far)


@dataclass
class FileResult:
    """One input file of a files run: `ok` (every record committed) or `failed` (none of it)."""

    path: str
    status: str
    records: int = 0
    error: str | None = None


@dataclass
class RunSummary:
    run_id: int
    source: str
    mode: str
    status: str = "running"
    search: str | None = None
    window: tuple[str, str] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    seconds: float = 0.0
    watermark_before: str | None = None
    watermark_after: str | None = None
    files: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # ids the source listed but never delivered
    error: str | None = None
    quarantined: list[Quarantined] = field(default_factory=list)  # poison records of this run, kept raw
    quarantine_retry: RetryOutcome = field(default_factory=RetryOutcome)  # earlier poison, offered again
    file_results: list[FileResult] = field(default_factory=list)  # files runs: each file's outcome

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = dict(self.counts)
        data["records"] = sum(self.counts.values())
        return data

    def committed(self) -> str:
        """What is in the catalog because of this run, in words (for partial and failed runs)."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()) if k != "quarantined") or "no records"
        files = [f.path for f in self.file_results if f.status == "ok"]
        where = f" from {len(files)} of {len(self.file_results)} files ({', '.join(files[:5])})" if self.file_results else ""
        return f"{counts} in {self.batches} batches{where}"

    def problems(self) -> list[str]:
        """Why the run is not `ok`, one sentence each, saying what happens next."""
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} listed records never arrived ({', '.join(self.missing[:10])}); "
                       "the watermark stays, so the next run asks for them again")
        if self.quarantined:
            out.append(f"{len(self.quarantined)} records quarantined ("
                       + "; ".join(f"{q.record_id}: {q.error}" for q in self.quarantined[:5])
                       + "); kept raw and retried by later runs, see `oncolit records quarantine`")
        for f in self.file_results:
            if f.status == "failed":
                out.append(f"{f.path} failed, nothing of it was stored: {f.error}")
        return out


def plan_window(watermark: dt.date | None, since: dt.date | None, until: dt.date | None,
                today: dt.date, initial_lookback_days: int) -> Window:
    """The window a run covers.

    Explicit --since wins; else it restarts at the watermark day itself (that day may have been
    only partly published when it was last read), else a fresh search looks back a few days.
    """
    end = until or today
    if since is not None:
        if since > end:
            raise UsageError(f"the window starts ({since}) after it ends ({end}): give --since on or before "
                             f"--until (default: today)")
        start = since
    elif watermark is not None:
        start = min(watermark, end)
    else:
        start = end - dt.timedelta(days=initial_lookback_days)
    return Window(start, end)


def run_search(catalog: Catalog, source: Source, *, search: dict[str, Any] | None = None,
               query: Query | None = None, since: dt.date | None = None, until: dt.date | None = None,
               today: dt.date | None = None, initial_lookback_days: int = 7,
               progress: ProgressFn | None = None, move_watermark: bool = True,
               should_stop: Callable[[], bool] | None = None) -> RunSummary:
    """Ingest one window of a saved search (or an ad-hoc query, which has no watermark)."""
    if (search is None) == (query is None):
        raise ValueError("give exactly one of a saved search or a query")
    today = today or dt.date.today()
    watermark = search["watermark"] if search else None
    window = plan_window(watermark, since, until, today, initial_lookback_days)
    if search is not None:
        query = Query(search["query"], dict(search.get("params") or {}))
    assert query is not None
    summary = RunSummary(
        run_id=catalog.start_run(source.name, "search" if search else "query",
                                 search["name"] if search else None, (window.start, window.end)),
        source=source.name, mode="search" if search else "query", search=search["name"] if search else None,
        window=(window.start.isoformat(), window.end.isoformat()),
        watermark_before=watermark.isoformat() if watermark else None)
    _consume(catalog, source.fetch_changes(query, window), summary, progress, should_stop)
    if summary.missing:
        # The source listed records it never delivered: holding the watermark makes the next run
        # ask for this window again, so they are fetched once the source serves them.
        log.warning("holding the watermark: %d listed records never arrived", len(summary.missing),
                    extra={"search": summary.search, "missing": summary.missing[:20]})
        summary.status = "partial"
    elif search is not None and move_watermark:
        # Everything up to window.end is committed: only now may the watermark move.
        catalog.set_watermark(search["name"], window.end)
        summary.watermark_after = window.end.isoformat()
    return summary


def run_files(catalog: Catalog, source_name: str, paths: Iterable[Path],
              reader: Callable[[Path], Iterator[ParsedItem]], *, batch_size: int = 500,
              progress: ProgressFn | None = None) -> RunSummary:
    """Ingest downloaded files (PubMed baseline/update XML, CT.gov JSON) through the same catalog path."""
    paths = list(paths)
    summary = RunSummary(run_id=catalog.start_run(source_name, "files"), source=source_name, mode="files",
                         files=[str(p) for p in paths])

    def batches() -> Iterator[Batch]:
        for path in paths:
            # A whole file is read before any of it is written: a defect near its end (a
            # truncated download) then fails the file cleanly instead of leaving it half-ingested,
            # and the other files still go in (a backfill is not undone by one bad download).
            try:
                items = list(reader(path))
            except (MalformedPayload, OSError) as exc:
                log.info("file failed, nothing of it stored: %s", exc, extra={"file": str(path)})  # reported by the run
                summary.file_results.append(FileResult(str(path), "failed", error=str(exc)))
                continue
            for start in range(0, len(items), batch_size):
                yield Batch(items[start:start + batch_size], {"file": str(path)})
            summary.file_results.append(FileResult(str(path), "ok", records=len(items)))  # all its batches committed

    _consume(catalog, batches(), summary, progress)
    if summary.status == "failed":
        raise MalformedPayload("no file could be ingested: " + "; ".join(
            f.error or f.path for f in summary.file_results))
    return summary


def _consume(catalog: Catalog, batches: Iterator[Batch], summary: RunSummary,
             progress: ProgressFn | None, should_stop: Callable[[], bool] | None = None) -> None:
    started = time.perf_counter()
    try:
        summary.quarantine_retry = retry_quarantine(catalog, summary.source, summary.run_id)
        if summary.quarantine_retry.recovered:
            evaluate_batch(catalog, summary.quarantine_retry.recovered)
        for batch in batches:
            if should_stop is not None and should_stop():
                raise IngestInterrupted(f"stopped on request after {summary.batches} committed batches; "
                                        "the next run redoes the rest of the window")
            outcome = catalog.ingest(batch.items, summary.run_id)
            counts = outcome.counts
            evaluate_batch(catalog, batch.items)  # librarians' include/exclude rules, at ingest time
            summary.counts.update(counts)
            _note_quarantined(summary, outcome.quarantined)
            summary.missing.extend(batch.info.get("missing") or [])
            summary.batches += 1
            log.info("batch committed", extra={"run_id": summary.run_id, "items": len(batch.items),
                                               "counts": dict(counts), **batch.info})
            if progress:
                progress(len(batch.items), summary.counts)
    except (OncoLitError, OSError) as exc:
        status = "interrupted" if isinstance(exc, IngestInterrupted) else "failed"
        summary.status, summary.error = status, str(exc)
        summary.seconds = time.perf_counter() - started
        catalog.finish_run(summary.run_id, status, summary.counts, str(exc))
        if summary.batches and not isinstance(exc, IngestInterrupted):
            then = ("the watermark did not move: rerun to finish the window" if summary.search else
                    "rerun to finish (what is committed is not stored twice)")
            raise PartialRun(f"{exc} — committed before it: {summary.committed()}; {then}") from exc
        raise
    except BaseException as exc:  # KeyboardInterrupt, SystemExit from SIGTERM: record, then re-raise
        summary.status, summary.error = "interrupted", repr(exc)
        catalog.finish_run(summary.run_id, "interrupted", summary.counts, repr(exc))
        raise
    problems = summary.problems()
    if summary.file_results and all(f.status == "failed" for f in summary.file_results):
        summary.status = "failed"
    else:
        summary.status = "partial" if problems else "ok"
    summary.seconds = time.perf_counter() - started
    summary.error = " | ".join(problems) or None
    catalog.finish_run(summary.run_id, summary.status, summary.counts, summary.error)


def _note_quarantined(summary: RunSummary, quarantined: list[Quarantined]) -> None:
    """Add a batch's poison records to the run, once each (a record may come in several batches)."""
    if quarantined:
        for q in quarantined:
            log.warning("record quarantined: %s", q.error, extra={"record_id": q.record_id, "run_id": summary.run_id})
        seen = {q.record_id for q in quarantined}
        summary.quarantined = [q for q in summary.quarantined if q.record_id not in seen] + quarantined
