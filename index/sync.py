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
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from index.store import Point
from ingest.catalog import Catalog

log = logging.getLogger(__name__)

# (record) -> (design label, evidence level) for the payload filters; None when unknown.
Annotator = Callable[[BaseModel], tuple[str | None, int | None]]
ProgressFn = Callable[[int], None]


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
    chunks_embedded: int = 0
    embed_cache_hits: int = 0
    cursor_after_id: str = ""
    stopped: bool = False  # a stop was requested before the catalog was caught up (the rest waits)
    seconds: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "seconds"}
        data["timings"] = {k: round(v, 3) for k, v in self.seconds.items()}
        return data


def rules_annotator(record: BaseModel) -> tuple[str | None, int | None]:
    """Design from the deterministic rules (cheap, always available); the grade comes from synthesis."""
    from ingest.records import Article
    from synthesis.rules.design import design_of

    if isinstance(record, Article):
        label = design_of(record).label
        return (None if label == "other" else label), None
    allocation = (record.design.allocation or "").upper()  # type: ignore[attr-defined]
    if allocation == "RANDOMIZED":
        return "rct", None
    if allocation == "NON_RANDOMIZED":
        return "non_randomised_controlled", None
    return None, None


def load_cursor(state_path: Path) -> SyncCursor:
    """The saved position; a missing or unreadable file starts from the beginning (a full resync)."""
    try:
        state = json.loads(state_path.read_text())
        seq = int(state["last_seq"])
        record_id = state.get("last_id", "")
    except (FileNotFoundError, KeyError, ValueError, TypeError, AttributeError):
        return SyncCursor()
    if not isinstance(record_id, str):
        return SyncCursor()
    # A legacy file ({"last_seq": N}) was saved after a step that may have ended inside seq N.
    return SyncCursor(seq, record_id)


def save_cursor(state_path: Path, cursor: SyncCursor) -> None:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"last_seq": cursor.seq, "last_id": cursor.record_id}))
    tmp.replace(state_path)  # atomic: a crash leaves the old cursor or the new one


def sync(catalog: Catalog, handle: Any, *, batch_size: int = 256, annotate: Annotator = rules_annotator,
         is_excluded: Callable[[str], bool] = lambda _rid: False, progress: ProgressFn | None = None,
         should_stop: Callable[[], bool] | None = None) -> SyncReport:
    """Bring `handle`'s collection up to the catalog. Returns what it wrote and how long each part took."""
    store, state_path = handle.store, handle.state_path
    cursor = load_cursor(state_path)
    if cursor != SyncCursor() and store.count() == 0:
        log.warning("index collection %s is empty but its cursor is at %s: resyncing from the start",
                    handle.collection, cursor)
        cursor = SyncCursor()
    report = SyncReport(collection=handle.collection, cursor_before=cursor.seq, cursor_after=cursor.seq,
                        cursor_after_id=cursor.record_id)
    for rows in catalog.changed_since(cursor.seq, batch_size=batch_size, after_id=cursor.record_id):
        if should_stop is not None and should_stop():
            report.stopped = True
            break
        sync_rows(catalog, handle, rows, report, annotate, is_excluded)
        cursor = SyncCursor(rows[-1]["change_seq"], rows[-1]["id"])
        save_cursor(state_path, cursor)
        report.cursor_after, report.cursor_after_id = cursor.seq, cursor.record_id
        if progress:
            progress(len(rows))
    if report.points_written:
        started = time.perf_counter()
        store.optimize()  # Qdrant Edge builds its HNSW graph only when asked
        report.seconds["optimize"] += time.perf_counter() - started
    return report


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

    started = time.perf_counter()
    chunks = []
    for _row, record in catalog.iter_records([r["id"] for r in live]):
        design, level = annotate(record)
        chunks.extend(handle.chunker.chunk(record, _row["current_version"], design=design, evidence_level=level))
    report.seconds["chunk"] += time.perf_counter() - started
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
    handle.store.drop_collection(handle.collection)
    handle.store.ensure_collection(handle.collection, handle.embedder.dim)
    save_cursor(handle.state_path, SyncCursor())
    return sync(catalog, handle, **kwargs)
