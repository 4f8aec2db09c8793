"""Index sync is exactly-once, and `index verify` catches what a cursor cannot (issue 18, item 1).

The old cursor was the last change_seq alone; an ingest batch shares one change_seq and is larger
than a sync step, so a sync killed inside a batch resumed after the whole seq and skipped the rest
for good (a deleted record stayed searchable). Here a multi-batch catalog change is synced with a
crash injected at every step boundary — before and after a step's points are written — and each
rerun must leave the index equal to a clean rebuild. Real records, the real embedder (its cache
makes the reruns cheap) and real Qdrant Edge shards; the only fault is the injected crash.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from index.store import Point
from index.sync import SyncCursor, load_cursor, rebuild, save_cursor, sync
from index.verify import repair, verify
from ingest.catalog import Catalog
from ingest.curation import Curation
from ingest.pubmed_xml import iter_pubmed_file
from ingest.records import CommentCorrection, Deletion
from ingest.source import ParsedItem
from oncolit.settings import Settings
from oncolit.wiring import make_embedder, open_index
from tests.helpers import run_cli

ONCOLOGY = re.compile(r"cancer|carcinoma|tumou?r|neoplasm|lymphoma|leukemia|melanoma|oncolog|metasta", re.I)
STEP = 4  # records per sync step: smaller than every ingest batch below, as 256 < 500 in production


class Killed(BaseException):
    """The process dying mid-sync (SIGKILL, Ctrl-C): nothing in sync may catch it."""


class CrashingStore:
    """The real store, except that its `crash_at`-th upsert dies, before or after writing."""

    def __init__(self, inner: Any, crash_at: int | None, after_write: bool = False) -> None:
        self.inner, self.crash_at, self.after_write = inner, crash_at, after_write
        self.upserts = 0

    def upsert(self, points: Sequence[Point]) -> None:
        self.upserts += 1
        crash = self.upserts == self.crash_at
        if crash and not self.after_write:
            raise Killed(f"killed before upsert {self.upserts}")
        self.inner.upsert(points)
        if crash:
            raise Killed(f"killed after upsert {self.upserts}, before the cursor was saved")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _articles(shared_data: Path, n: int) -> list[ParsedItem]:
    items = []
    for item in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "pubmedqa-dev-0001.xml.gz"):
        if ONCOLOGY.search(item.record.title + " " + item.record.abstract_text):
            items.append(item)
            if len(items) == n:
                return items
    raise AssertionError("not enough oncology records in the recorded file")


def _retraction_of(template: ParsedItem, target_pmid: str) -> ParsedItem:
    notice = template.record.model_copy(update={
        "pmid": "99999999", "title": "Retraction notice", "abstract": [],
        "publication_types": ["Retraction of Publication"],
        "comments_corrections": [CommentCorrection(ref_type="RetractionOf", pmid=target_pmid)]})
    return ParsedItem(notice, b"<PubmedArticle/>", "pubmed-xml")


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory):
    emb = make_embedder(Settings(data_dir=tmp_path_factory.mktemp("embed-cache")))
    yield emb
    emb.close()


@pytest.fixture(scope="module")
def scenario(shared_data: Path, tmp_path_factory: pytest.TempPathFactory, embedder) -> dict[str, Any]:
    """`before`: 14 records ingested in one batch and synced. `after`: the same catalog after two
    more ingest batches (new records, a DeleteCitation and a retraction of indexed records), not
    synced yet; `rebuilt`: what a clean rebuild of that catalog gives (point ids by record)."""
    items = _articles(shared_data, 26)
    base, later, newest = items[:14], items[14:21], items[21:]
    deleted, retracted = base[3].record.record_id, base[5].record.record_id
    before = tmp_path_factory.mktemp("before")
    settings = Settings(data_dir=before)
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        catalog.ingest_batch(base)
        sync(catalog, handle, batch_size=STEP)
        assert handle.store.point_ids_for(deleted) and handle.store.point_ids_for(retracted)
        catalog.ingest_batch([*later, ParsedItem(Deletion(pmid=deleted.split(":")[1]), b"", "pubmed-xml")])
        catalog.ingest_batch([*newest, _retraction_of(base[0], retracted.split(":")[1])])
        pending = sum(len(rows) for rows in catalog.changed_since(load_cursor(handle.state_path).seq))
    assert pending > 3 * STEP, "the change must span several sync steps"
    rebuilt_dir = tmp_path_factory.mktemp("rebuilt")
    shutil.copytree(before, rebuilt_dir, dirs_exist_ok=True)
    rs = Settings(data_dir=rebuilt_dir)
    with Catalog(rs.resolved_catalog_url) as catalog, open_index(rs, embedder=embedder) as handle:
        rebuild(catalog, handle, batch_size=STEP)
        rebuilt = handle.store.points_by_record()
    assert deleted not in rebuilt and retracted not in rebuilt and "pubmed:99999999" in rebuilt
    return {"before": before, "rebuilt": rebuilt, "deleted": deleted, "retracted": retracted}


def _copy(src: Path, dst: Path) -> Settings:
    shutil.copytree(src, dst)
    return Settings(data_dir=dst)


def _upserts_in_clean_sync(scenario: dict[str, Any], tmp_path: Path, embedder) -> int:
    settings = _copy(scenario["before"], tmp_path / "count")
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        counting = CrashingStore(handle.store, crash_at=None)
        sync(catalog, dataclasses.replace(handle, store=counting), batch_size=STEP)
        assert handle.store.points_by_record() == scenario["rebuilt"]
    return counting.upserts


@pytest.mark.parametrize("after_write", [False, True], ids=["before-write", "after-write"])
def test_sync_killed_at_every_step_boundary_then_rerun_equals_rebuild(
        scenario: dict[str, Any], tmp_path: Path, embedder, after_write: bool) -> None:
    steps = _upserts_in_clean_sync(scenario, tmp_path, embedder)
    assert steps >= 4
    for crash_at in range(1, steps + 1):
        settings = _copy(scenario["before"], tmp_path / f"kill-{crash_at}")
        with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
            with pytest.raises(Killed):
                sync(catalog, dataclasses.replace(handle, store=CrashingStore(handle.store, crash_at, after_write)),
                     batch_size=STEP)
        # A new process: reopen everything, sync again.
        with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
            report = sync(catalog, handle, batch_size=STEP)
            assert report.records_indexed > 0, f"killed at step {crash_at}: the rerun indexed nothing"
            assert handle.store.points_by_record() == scenario["rebuilt"], f"killed at step {crash_at}"
            assert handle.store.point_ids_for(scenario["deleted"]) == set()
            assert verify(catalog, handle).ok
            assert load_cursor(handle.state_path).seq == catalog.max_change_seq()


def test_legacy_cursor_file_resumes_inside_its_seq(scenario: dict[str, Any], tmp_path: Path, embedder) -> None:
    """A cursor file from before the (seq, id) pair holds only `last_seq`; reading it must redo that
    seq, not skip the rest of it."""
    settings = _copy(scenario["before"], tmp_path / "legacy")
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        with pytest.raises(Killed):
            sync(catalog, dataclasses.replace(handle, store=CrashingStore(handle.store, 2)), batch_size=STEP)
        seq = load_cursor(handle.state_path).seq
        handle.state_path.write_text(json.dumps({"last_seq": seq}))  # what the old sync wrote
        assert load_cursor(handle.state_path) == SyncCursor(seq, "")
        sync(catalog, handle, batch_size=STEP)
        assert handle.store.points_by_record() == scenario["rebuilt"]


def test_verify_reports_drift_and_repair_restores_a_rebuild(scenario: dict[str, Any], tmp_path: Path,
                                                            embedder) -> None:
    settings = _copy(scenario["before"], tmp_path / "drift")
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings, embedder=embedder) as handle:
        # What the old cursor bug left behind: the catalog moved on and the cursor claims it all.
        save_cursor(handle.state_path, SyncCursor(catalog.max_change_seq(), "~"))
        assert sync(catalog, handle, batch_size=STEP).records_indexed == 0
        found = verify(catalog, handle)
        assert not found.ok
        leaks = {(leak.record_id, leak.reason) for leak in found.leaked}
        assert {(scenario["deleted"], "deleted"), (scenario["retracted"], "retracted")} <= leaks
        new_ids = set(scenario["rebuilt"]) - set(handle.store.points_by_record())
        assert set(found.missing) == new_ids and "pubmed:99999999" in found.missing
        # A record that lost one of its points (a partial write restored from a backup, say).
        multi = next(rid for rid, pts in sorted(handle.store.points_by_record().items())
                     if len(pts) > 1 and rid in scenario["rebuilt"])
        handle.store.delete([sorted(handle.store.point_ids_for(multi))[0]])
        found = verify(catalog, handle)
        assert [m.record_id for m in found.mismatched] == [multi] and found.mismatched[0].absent_points == 1
        # A librarian excludes an indexed record; verify is told who is excluded, as the CLI does.
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "lib", "librarian")
        excluded = next(rid for rid in sorted(scenario["rebuilt"]) if rid not in (multi, *found.missing))
        cur.exclude("lib", [excluded], "off topic")
        is_excluded = Curation(catalog).exclusions().__contains__
        found = verify(catalog, handle, is_excluded=is_excluded)
        assert (excluded, "excluded") in {(leak.record_id, leak.reason) for leak in found.leaked}
        fixed = repair(catalog, handle, found, is_excluded=is_excluded)
        assert fixed.records_removed == len(found.leaked) and fixed.records_indexed == len(found.missing) + 1
        assert verify(catalog, handle, is_excluded=is_excluded).ok
        expected = {rid: pts for rid, pts in scenario["rebuilt"].items() if rid != excluded}
        assert handle.store.points_by_record() == expected


def test_verify_cli_exit_codes(scenario: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _copy(scenario["before"], tmp_path / "cli")
    with Catalog(settings.resolved_catalog_url) as catalog:
        max_seq = catalog.max_change_seq()
    collection_state = next((settings.data_dir / "index-state").glob("*.json"))
    save_cursor(collection_state, SyncCursor(max_seq, "~"))  # the skipped stretch, as above
    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(settings.data_dir))
    checked = run_cli("index", "verify", "--json", check=False)
    assert checked.returncode == 4, checked.stderr
    report = json.loads(checked.stdout)
    assert report["ok"] is False and scenario["deleted"] in {leak["record_id"] for leak in report["leaked"]}
    assert "--repair" in checked.stderr
    repaired = run_cli("index", "verify", "--repair", "--json", check=False)
    assert repaired.returncode == 0, repaired.stderr
    data = json.loads(repaired.stdout)
    assert data["after_repair"]["ok"] is True and data["repair"]["records_indexed"] == len(report["missing"])
    assert run_cli("index", "verify", check=False).returncode == 0
