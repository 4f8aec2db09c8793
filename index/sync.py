"""Catalog -> index sync: incremental, resumable, exactly-once, version-aware, and always rebuildable.

The cursor is a position in the catalog's (change_seq, record id) order, not a bare change_seq:
all records of one ingest batch share one change_seq and a batch (500) is larger than a sync step
(256), so a cursor of "seq N" alone cannot say which records of seq N are done — resuming after
it skipped the rest of that batch for good (issue 18). Each step takes the next records after the
cursor, writes their points, removes points of older versions, and only then saves the cursor. A
crash between the two repeats a step, which is harmless: point ids are derived from record id +
version + chunk number, so re-upserting the same chunks changes nothing.

Cursor files written before the pair existed hold only `last_seq`; they are read as "seq N is not
known to be complete", so the rerun redoes seq N (harmless) instead of skipping part of it.

Deleted and retracted records (and librarian-excluded ones) lose their points: what must not be
cited is not retrievable. `index.verify` checks the result against the catalog and repairs it.

Each point's payload carries the record's design and evidence level for the search filters
(`--design`, `--max-level`). They come from an `Annotator` — the product's grader, which lives on
a floor above the index, so the wiring puts it on the index handle and the sync never imports it.
The state file keeps the annotator's fingerprint beside the cursor; when the grading changes (a
new rubric, new classifier weights) the fingerprint differs and the next sync rewrites the design
and level of every point in place (`Store.set_payload`: no chunking, no embedding) before it syncs
what changed. A state file without a fingerprint (written before there was one, when levels were
never filled) reads as "graded by nobody", so that first sync fills them.

A handle with a `synonyms` table (`index.expansion.SynonymTable`, the query-expansion vocabulary) has it
brought up to the catalog too, after the points, on its own cursor (so it catches up by itself).
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from index.store import Point
from ingest.catalog import Catalog

log = logging.getLogger(__name__)

# (design label, evidence level) for the payload filters; None where the grader has no answer.
Annotation = tuple[str | None, int | None]
ProgressFn = Callable[[int], None]


class Annotator(Protocol):
    """The grader as the sync sees it: a record's `Annotation`, and a `fingerprint` that changes whenever
    the same record could be annotated differently (so the sync knows when stored payloads are stale)."""

    @property
    def fingerprint(self) -> str: ...

    def __call__(self, record: BaseModel) -> Annotation: ...


@dataclass(frozen=True)
class SyncCursor:
    """Every record at or before (`seq`, `record_id`) in (change_seq, id) order is in the index.

    `record_id` "" means "nothing of seq `seq` is known to be done": the next sync starts at the
    first record of `seq` (the reading of a legacy cursor file, which held only the seq).
    """

    seq: int = 0
    record_id: str = ""


@dataclass
class SyncReport:
    collection: str
    cursor_before: int
    cursor_after: int = 0
    records_indexed: int = 0
    records_removed: int = 0
    points_written: int = 0
    points_removed: int = 0
    records_regraded: int = 0  # records whose points got a fresh design / level in place (grading changed)
    points_regraded: int = 0
    chunks_embedded: int = 0
    embed_cache_hits: int = 0
    cursor_after_id: str = ""
    grading: str = ""  # the fingerprint of the annotator the payloads now hold
    stopped: bool = False  # a stop was requested before the catalog was caught up (the rest waits)
    synonym_records: int = 0  # records whose synonym pairs were (re)read
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "seconds"}
        data["timings"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return data


def _read_state(state_path: Path) -> dict[str, Any]:
    try:
        state = json.loads(state_path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def load_cursor(state_path: Path) -> SyncCursor:
    """The saved position; a missing or unreadable file starts from the beginning (a full resync)."""
    state = _read_state(state_path)
    try:
        seq = int(state["last_seq"])
        record_id = state.get("last_id", "")
    except (KeyError, ValueError, TypeError):
        return SyncCursor()
    if not isinstance(record_id, str):
        return SyncCursor()
    # A legacy file ({"last_seq": N}) was saved after a step that may have ended inside seq N.
    return SyncCursor(seq, record_id)


def load_grading(state_path: Path) -> str | None:
    """The fingerprint of the annotator the collection's payloads were written with; None when unknown."""
    value = _read_state(state_path).get("grading")
    return value if isinstance(value, str) else None


def save_cursor(state_path: Path, cursor: SyncCursor, *, grading: str | None = None) -> None:
    """Save the position (and the grading fingerprint; None keeps the one already saved)."""
    grading = grading if grading is not None else load_grading(state_path)
    state: dict[str, Any] = {"last_seq": cursor.seq, "last_id": cursor.record_id}
    if grading is not None:
        state["grading"] = grading
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(state_path)  # atomic: a crash leaves the old state or the new one


def save_grading(state_path: Path, grading: str) -> None:
    """Record that the payloads now hold `grading`'s answers, leaving the cursor where it is."""
    save_cursor(state_path, load_cursor(state_path), grading=grading)


def sync(catalog: Catalog, handle: Any, *, batch_size: int = 256, annotate: Annotator | None = None,
         is_excluded: Callable[[str], bool] = lambda _rid: False, progress: ProgressFn | None = None,
         should_stop: Callable[[], bool] | None = None) -> SyncReport:
    """Bring `handle`'s collection up to the catalog. Returns what it wrote and how long each part took.

    `annotate` defaults to the handle's (`IndexHandle.annotator`: the grader the wiring built)."""
    store, state_path = handle.store, handle.state_path
    annotate = annotate if annotate is not None else handle.annotator
    cursor = load_cursor(state_path)
    if cursor != SyncCursor() and store.count() == 0:
        log.warning("index collection %s is empty but its cursor is at %s: resyncing from the start",
                    handle.collection, cursor)
        cursor = SyncCursor()
    report = SyncReport(collection=handle.collection, cursor_before=cursor.seq, cursor_after=cursor.seq,
                        cursor_after_id=cursor.record_id, grading=annotate.fingerprint)
    held = load_grading(state_path)
    if cursor != SyncCursor() and held != annotate.fingerprint:
        log.info("index collection %s holds grades of %s, the grader is %s: refreshing them in place",
                 handle.collection, held or "no grader", annotate.fingerprint)
        if not refresh_annotations(catalog, handle, annotate, report, batch_size=batch_size,
                                   should_stop=should_stop):
            report.stopped, report.grading = True, held or ""
            return report
        save_grading(state_path, annotate.fingerprint)
    for rows in catalog.changed_since(cursor.seq, batch_size=batch_size, after_id=cursor.record_id):
        if should_stop is not None and should_stop():
            report.stopped = True
            break
        sync_rows(catalog, handle, rows, report, annotate, is_excluded)
        cursor = SyncCursor(rows[-1]["change_seq"], rows[-1]["id"])
        save_cursor(state_path, cursor, grading=annotate.fingerprint)
        report.cursor_after, report.cursor_after_id = cursor.seq, cursor.record_id
        if progress:
            progress(len(rows))
    if report.points_written or report.points_regraded:
        started = time.perf_counter()
        store.optimize()  # Qdrant Edge builds its HNSW graph only when asked (payload updates move points too)
        report.seconds["optimize"] += time.perf_counter() - started
    synonyms = getattr(handle, "synonyms", None)
    if synonyms is not None and not report.stopped:
        started = time.perf_counter()
        report.synonym_records = synonyms.follow(catalog, is_live=lambda row: is_live(row, is_excluded),
                                                 batch_size=batch_size, should_stop=should_stop)
        report.seconds["synonyms"] += time.perf_counter() - started
    return report


def refresh_annotations(catalog: Catalog, handle: Any, annotate: Annotator, report: SyncReport, *,
                        batch_size: int = 256, should_stop: Callable[[], bool] | None = None) -> bool:
    """Give every point in the collection its record's current annotation, in place: payload only, so a
    grading change costs a grading pass, not a re-embedding. Points of records the catalog no longer
    holds as active are left to `index.verify` (they are leaks, not stale grades).

    Returns False when stopped before the end; the caller then keeps the old fingerprint, so the next
    sync starts the refresh again (it is idempotent)."""
    started = time.perf_counter()
    store = handle.store
    indexed = store.points_by_record()
    ids = sorted(indexed)
    for start in range(0, len(ids), batch_size):
        if should_stop is not None and should_stop():
            report.seconds["regrade"] += time.perf_counter() - started
            return False
        groups: dict[Annotation, list[str]] = {}  # one store call per distinct annotation, not per record
        for row, record in catalog.iter_records(ids[start:start + batch_size]):
            groups.setdefault(annotate(record), []).extend(indexed[row["id"]])
            report.records_regraded += 1
        for (design, level), point_ids in groups.items():
            store.set_payload(sorted(point_ids), {"design": design, "evidence_level": level})
            report.points_regraded += len(point_ids)
    report.seconds["regrade"] += time.perf_counter() - started
    return True


def is_live(row: dict[str, Any], is_excluded: Callable[[str], bool]) -> bool:
    """Whether a catalog row (as `Catalog.changed_since` yields it) may have points in the index."""
    return row["state"] == "active" and not row["retracted"] and not is_excluded(row["id"])


def sync_rows(catalog: Catalog, handle: Any, rows: list[dict[str, Any]], report: SyncReport,
              annotate: Annotator, is_excluded: Callable[[str], bool]) -> None:
    """Make the index hold exactly the current points of `rows`: what one sync step (and a repair) does."""
    store = handle.store
    live = [r for r in rows if is_live(r, is_excluded)]
    gone = [r for r in rows if r not in live]
    started = time.perf_counter()
    for row in gone:
        removed = store.point_ids_for(row["id"])
        if removed:
            store.delete(sorted(removed))
            report.points_removed += len(removed)
            report.records_removed += 1
    report.seconds["remove"] += time.perf_counter() - started

    chunks = []
    for row, record in catalog.iter_records([r["id"] for r in live]):
        started = time.perf_counter()
        design, level = annotate(record)
        graded = time.perf_counter()
        chunks.extend(handle.chunker.chunk(record, row["current_version"], design=design, evidence_level=level))
        report.seconds["grade"] += graded - started
        report.seconds["chunk"] += time.perf_counter() - graded
    if not chunks:
        return

    started = time.perf_counter()
    hits_before = getattr(handle.embedder, "hits", 0)
    dense = handle.embedder.embed([c.text for c in chunks])
    report.embed_cache_hits += getattr(handle.embedder, "hits", 0) - hits_before
    report.chunks_embedded += len(chunks)
    report.seconds["embed"] += time.perf_counter() - started

    started = time.perf_counter()
    sparse = handle.encoder.encode_documents([c.text for c in chunks])
    points = [Point(c.point_id, vec, sp, c.point_payload()) for c, vec, sp in zip(chunks, dense, sparse)]
    store.upsert(points)
    report.points_written += len(points)
    new_ids: dict[str, set[str]] = {}
    for c in chunks:
        new_ids.setdefault(c.record_id, set()).add(c.point_id)
    for rid, ids in new_ids.items():  # points of older versions (or of chunks that no longer exist)
        stale = store.point_ids_for(rid) - ids
        if stale:
            store.delete(sorted(stale))
            report.points_removed += len(stale)
    report.records_indexed += len(new_ids)
    report.seconds["store"] += time.perf_counter() - started


def rebuild(catalog: Catalog, handle: Any, **kwargs: Any) -> SyncReport:
    """Drop the collection and sync from the start: the index is derived, the catalog is the truth."""
    annotate = kwargs.get("annotate") or handle.annotator
    handle.store.drop_collection(handle.collection)
    handle.store.ensure_collection(handle.collection, handle.embedder.dim)
    save_cursor(handle.state_path, SyncCursor(), grading=annotate.fingerprint)
    if getattr(handle, "synonyms", None) is not None:
        handle.synonyms.reset()
    return sync(catalog, handle, **kwargs)
