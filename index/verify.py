"""Check the index against the catalog, and repair what differs: `oncolit index verify [--repair]`.

The sync follows a cursor; if that ever went wrong (a skipped stretch, a crash in an older
release, a store restored from a backup, points written by hand), the cursor cannot tell. This
module does not trust it: it compares the whole collection with what a clean rebuild would hold,

* every live record (active, not retracted, not excluded) must have exactly the points its current
  version chunks into — none (`missing`) or others (`mismatched`: an older version, a chunk too
  many or too few) is a finding;
* no other record may have points (`leaked`): deleted, retracted and excluded records must not be
  retrievable (a deleted record that stays searchable gets quoted and cited by `ask`), and neither
  may records the catalog does not hold at all.

Expected point ids come from the chunker (cheap: no embedding), so equal ids mean the index equals
a rebuild. Repair re-syncs the missing and mismatched records through the sync's own step and
deletes leaked points; the cursor is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from index.sync import Annotator, SyncReport, is_live, rules_annotator, sync_rows
from ingest.catalog import Catalog

LeakReason = Literal["deleted", "retracted", "excluded", "not_in_catalog"]


@dataclass(frozen=True)
class Leak:
    """Points of a record that must not be retrievable, and why."""

    record_id: str
    reason: LeakReason
    points: int


@dataclass(frozen=True)
class Mismatch:
    """A live record whose points are not the ones its current version chunks into."""

    record_id: str
    version: int
    expected_points: int
    extra_points: int  # points the record should not have (older versions, chunks no longer produced)
    absent_points: int  # points of the current version that are not in the index


@dataclass
class VerifyReport:
    collection: str
    records_checked: int = 0
    points_checked: int = 0
    missing: list[str] = field(default_factory=list)  # live records without a single point
    mismatched: list[Mismatch] = field(default_factory=list)
    leaked: list[Leak] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.leaked)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["seconds"] = round(self.seconds, 3)
        return data


def verify(catalog: Catalog, handle: Any, *, is_excluded: Callable[[str], bool] = lambda _rid: False,
           annotate: Annotator = rules_annotator) -> VerifyReport:
    """Compare `handle`'s collection with the catalog; changes nothing."""
    started = time.perf_counter()
    report = VerifyReport(collection=handle.collection)
    indexed = handle.store.points_by_record()
    report.points_checked = sum(len(points) for points in indexed.values())
    live_rows: dict[str, dict[str, Any]] = {}
    for rows in catalog.changed_since(0, batch_size=2000, after_id=""):
        for row in rows:
            report.records_checked += 1
            rid = row["id"]
            if is_live(row, is_excluded):
                live_rows[rid] = row
                continue
            points = indexed.pop(rid, None)
            if points:
                reason: LeakReason = ("deleted" if row["state"] != "active" else
                                      "retracted" if row["retracted"] else "excluded")
                report.leaked.append(Leak(rid, reason, len(points)))
    for rid in sorted(set(indexed) - set(live_rows)):
        report.leaked.append(Leak(rid, "not_in_catalog", len(indexed[rid])))
    for row, record in catalog.iter_records(list(live_rows)):
        rid = row["id"]
        held = set(indexed.get(rid, {}))
        if not held:
            report.missing.append(rid)
            continue
        design, level = annotate(record)
        expected = {c.point_id for c in handle.chunker.chunk(record, row["current_version"], design=design,
                                                             evidence_level=level)}
        if held != expected:
            report.mismatched.append(Mismatch(rid, row["current_version"], len(expected),
                                              len(held - expected), len(expected - held)))
    report.missing.sort()
    report.leaked.sort(key=lambda leak: leak.record_id)
    report.seconds = time.perf_counter() - started
    return report


def repair(catalog: Catalog, handle: Any, found: VerifyReport, *,
           is_excluded: Callable[[str], bool] = lambda _rid: False,
           annotate: Annotator = rules_annotator) -> SyncReport:
    """Fix what `verify` found: re-sync missing and mismatched records, delete leaked points."""
    report = SyncReport(collection=handle.collection, cursor_before=0)
    store = handle.store
    started = time.perf_counter()
    for leak in found.leaked:
        ids = store.point_ids_for(leak.record_id)
        if ids:
            store.delete(sorted(ids))
            report.points_removed += len(ids)
            report.records_removed += 1
    report.seconds["remove"] += time.perf_counter() - started
    todo = set(found.missing) | {m.record_id for m in found.mismatched}
    if todo:
        rows = [row for batch in catalog.changed_since(0, batch_size=2000, after_id="")
                for row in batch if row["id"] in todo]
        for start in range(0, len(rows), 256):
            sync_rows(catalog, handle, rows[start:start + 256], report, annotate, is_excluded)
    if report.points_written:
        store.optimize()
    return report
