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

Expected point ids come from the chunker (cheap: no embedding, no grading: ids do not depend on the
payload), so equal ids mean the index holds a rebuild's points. Their design and level are checked
through the grading fingerprint the sync saved (`grading_stale`: the payloads hold another grader's
answers, or nobody's). Repair re-syncs the missing and mismatched records through the sync's own
step, refreshes stale grades in place and deletes leaked points; the cursor is left alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from index.sync import Annotator, SyncReport, is_live, load_grading, refresh_annotations, save_grading, sync_rows
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
    grading_stale: bool = False  # the points' design / level are not the current grader's
    grading: str = ""  # the current grader's fingerprint
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.leaked or self.grading_stale)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["seconds"] = round(self.seconds, 3)
        return data


def verify(catalog: Catalog, handle: Any, *, is_excluded: Callable[[str], bool] = lambda _rid: False,
           annotate: Annotator | None = None) -> VerifyReport:
    """Compare `handle`'s collection with the catalog; changes nothing. `annotate` defaults to the handle's."""
    started = time.perf_counter()
    annotate = annotate if annotate is not None else handle.annotator
    report = VerifyReport(collection=handle.collection, grading=annotate.fingerprint)
    indexed = handle.store.points_by_record()
    report.points_checked = sum(len(points) for points in indexed.values())
    report.grading_stale = bool(indexed) and load_grading(handle.state_path) != annotate.fingerprint
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
        expected = {c.point_id for c in handle.chunker.chunk(record, row["current_version"])}
        if held != expected:
            report.mismatched.append(Mismatch(rid, row["current_version"], len(expected),
                                              len(held - expected), len(expected - held)))
    report.missing.sort()
    report.leaked.sort(key=lambda leak: leak.record_id)
    report.seconds = time.perf_counter() - started
    return report


def repair(catalog: Catalog, handle: Any, found: VerifyReport, *,
           is_excluded: Callable[[str], bool] = lambda _rid: False,
           annotate: Annotator | None = None) -> SyncReport:
    """Fix what `verify` found: delete leaked points, refresh stale grades, re-sync missing and
    mismatched records."""
    annotate = annotate if annotate is not None else handle.annotator
    report = SyncReport(collection=handle.collection, cursor_before=0, grading=annotate.fingerprint)
    store = handle.store
    started = time.perf_counter()
    for leak in found.leaked:
        ids = store.point_ids_for(leak.record_id)
        if ids:
            store.delete(sorted(ids))
            report.points_removed += len(ids)
            report.records_removed += 1
    report.seconds["remove"] += time.perf_counter() - started
    if found.grading_stale:
        refresh_annotations(catalog, handle, annotate, report)
        save_grading(handle.state_path, annotate.fingerprint)
    todo = set(found.missing) | {m.record_id for m in found.mismatched}
    if todo:
        rows = [row for batch in catalog.changed_since(0, batch_size=2000, after_id="")
                for row in batch if row["id"] in todo]
        for start in range(0, len(rows), 256):
            sync_rows(catalog, handle, rows[start:start + 256], report, annotate, is_excluded)
    if report.points_written or report.points_regraded:
        store.optimize()
    return report
