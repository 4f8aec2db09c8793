"""Many writers on one PostgreSQL catalog: two ingest workers, the scheduler's run-once and the HTTP
server's catalog reads at once, against the replay server. Nothing lost, nothing duplicated.

"Lost" has two meanings here. A record missing from the catalog, and — subtler — a record in the
catalog that a follower of `change_seq` (the index sync, digests) never sees: with concurrent writers a
batch numbered below a position a reader already passed would be skipped for ever. The follower below
reads `changed_since` the way the index sync does, all through the run, and must see every record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from ingest.errors import RecordNotFound
from ingest.lock import AdvisoryLock, LockBusy, job_lock
from ingest.replay import ReplayServer
from oncolit.api_routes.records import _record
from oncolit.resources import open_resources
from oncolit.settings import Settings
from tests.helpers import ONCOLIT, pubmed_env

SINCE, UNTIL, TOTAL = "2026-11-02", "2026-11-27", 2352  # the constructed PubMed files (test_ingest_e2e)


@pytest.fixture(scope="module")
def server(shared_data: Path):
    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as srv:
        yield srv


class Follower(threading.Thread):
    """Reads the catalog as the HTTP server and the index sync do, until told to stop: pages of
    `changed_since` from its saved position, and each new record by id through the body of
    GET /records/{id} (`_record` over the server's `Resources`; the HTTP layer itself is not started:
    its lifespan loads the embedding model, which this test does not need)."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.catalog = Catalog(url)
        self.stack = ExitStack()
        self.resources = self.stack.enter_context(open_resources(Settings(catalog_url=url), catalog=self.catalog))
        self.seen: set[str] = set()
        self.reads = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        seq, after = 0, None
        while True:
            stopping = self.stop.is_set()  # read before the last pass, so that pass sees every commit
            try:
                for page in self.catalog.changed_since(seq, batch_size=200, after_id=after):
                    for row in page:
                        if row["id"] not in self.seen:
                            self.seen.add(row["id"])
                            record = _record(self.resources, row["id"])
                            assert record["version"] >= 1 and record["curation"]["excluded"] is False, record
                            self.reads += 1
                    seq, after = page[-1]["change_seq"], page[-1]["id"]
            except (RecordNotFound, AssertionError) as exc:
                self.errors.append(repr(exc))
            if stopping:
                self.stack.close()
                self.catalog.close()
                return
            time.sleep(0.05)


def test_two_workers_the_scheduler_and_readers_lose_and_duplicate_nothing(
        server: ReplayServer, pg_url: str, isolated_env: Path) -> None:
    server.faults.clear()
    env = {**os.environ, **pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="100"),
           "ONCOLIT_CATALOG_URL": pg_url, "ONCOLIT_SCHEDULE__FOLLOW_ON": "[]"}
    with Catalog(pg_url) as catalog:
        catalog.add_search("everything", "pubmed", "all[sb]", watermark=dt.date.fromisoformat(SINCE))
    follower = Follower(pg_url)
    follower.start()
    # Overlapping windows, so the same records arrive from two or three writers at once.
    workers = [subprocess.Popen([sys.executable, "-m", "tests.pg_worker", pg_url, since, until], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for since, until in ((SINCE, "2026-11-20"), ("2026-11-10", UNTIL))]
    scheduler = subprocess.Popen([*ONCOLIT, "schedule", "run-once", "everything", "--json"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [p.communicate(timeout=240) for p in (*workers, scheduler)]
    follower.stop.set()
    follower.join(timeout=60)
    for proc, (_, err) in zip((*workers, scheduler), outputs):
        assert proc.returncode == 0, err
    summaries = [json.loads(out) for out, _ in outputs]
    assert all(s["status"] == "ok" for s in summaries[:2]), summaries
    assert summaries[2]["status"] == "ok" and summaries[2]["ingest"]["watermark_after"] >= UNTIL  # up to today

    with Catalog(pg_url) as catalog:
        stats = catalog.stats()["total"]
        assert stats["records"] == TOTAL, "a record was lost"
        assert stats["versions"] == TOTAL, "a record was stored twice (a second version of the same content)"
        with catalog.engine.connect() as conn:
            assert conn.execute(select(func.max(t.records.c.current_version))).scalar_one() == 1
        # Each writer's counts add up: every delivery of a record is new exactly once, else unchanged.
        counts = [s["counts"] for s in summaries[:2]] + [summaries[2]["ingest"]["counts"]]
        assert sum(c.get("new", 0) for c in counts) == TOTAL, counts
        ids = {row[0] for row in catalog.snapshot()["records"]}
    assert not follower.errors, follower.errors[:3]
    assert follower.seen == ids, f"the change_seq follower missed {len(ids - follower.seen)} records"
    assert follower.reads == TOTAL


def test_the_advisory_lock_is_one_holder_across_connections_and_says_who(pg_url: str, tmp_path: Path) -> None:
    first = job_lock(pg_url, tmp_path, "ingest")
    assert isinstance(first, AdvisoryLock)
    with first:
        with pytest.raises(LockBusy, match=rf"pid {os.getpid()} from 127\.0\.0\.1"):
            job_lock(pg_url, tmp_path, "ingest", wait=0.3).acquire()
        with job_lock(pg_url, tmp_path, "digest"):  # another job's lock is independent
            pass
    with job_lock(pg_url, tmp_path, "ingest"):  # released: free again
        pass


def test_a_killed_holder_releases_the_advisory_lock(pg_url: str, tmp_path: Path) -> None:
    code = ("import sys, time; from ingest.lock import job_lock; from pathlib import Path; "
            "job_lock(sys.argv[1], Path(sys.argv[2])).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, pg_url, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy):
            job_lock(pg_url, tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with job_lock(pg_url, tmp_path, wait=10.0):  # the server dropped the dead session's lock
        pass


def test_sqlite_catalogs_keep_the_file_lock(tmp_path: Path) -> None:
    lock = job_lock(f"sqlite:///{tmp_path / 'c.sqlite'}", tmp_path)
    with lock:
        assert (tmp_path / "ingest.lock").exists()
        with pytest.raises(LockBusy):
            job_lock(f"sqlite:///{tmp_path / 'c.sqlite'}", tmp_path).acquire()


def test_the_scheduler_job_store_lives_in_the_postgresql_catalog(pg_url: str) -> None:
    """APScheduler's SQLAlchemy job store on the catalog URL: jobs written by one scheduler are read by
    another (another process or machine), in the catalog's schema."""
    from ingest.scheduler import InertScheduler, build_scheduler, describe_jobs, sync_jobs

    with Catalog(pg_url) as catalog:
        catalog.add_search("melanoma", "pubmed", "melanoma[mh]", schedule="0 6 * * 1-5")
        first = build_scheduler(pg_url, scheduler_cls=InertScheduler)
        first.start(paused=True)
        assert sync_jobs(first, catalog, "0 5 * * *", "UTC")["added"] == ["ingest:pubmed:melanoma"]
        first.shutdown()
        second = build_scheduler(pg_url, scheduler_cls=InertScheduler)
        second.start(paused=True)
        try:
            [job] = describe_jobs(second, catalog)
            assert job["id"] == "ingest:pubmed:melanoma" and job["next_run"]
            assert sync_jobs(second, catalog, "0 5 * * *", "UTC")["kept"] == ["ingest:pubmed:melanoma"]
        finally:
            second.shutdown()
        with catalog.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar_one() == 1


def test_an_unreachable_server_is_a_catalog_error_without_the_password(tmp_path: Path) -> None:
    from ingest.errors import CatalogError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CatalogError, match="database server up") as info:
        Catalog(f"postgresql+psycopg://oncolit:hunter2@127.0.0.1:{port}/oncolit")
    assert "hunter2" not in str(info.value) and "***" in str(info.value)


def test_processes_opening_a_new_catalog_at_once_migrate_it_once(pg_url: str) -> None:
    """API workers and a scheduler starting together on an empty database: one applies the
    migrations, the others wait and find them done (no duplicate CREATE TABLE, no error)."""
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Catalog(pg_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not errors, errors
    with Catalog(pg_url) as catalog, catalog.engine.connect() as conn:
        names = list(conn.execute(select(t.schema_migrations.c.name)).scalars())
    assert len(names) == len(set(names)) > 0


def test_a_bare_postgresql_url_means_the_installed_driver(pg_url: str, tmp_path: Path) -> None:
    bare = pg_url.replace("postgresql+psycopg://", "postgresql://")
    assert Settings(catalog_url=bare).resolved_catalog_url == pg_url
    with Catalog(bare.replace("postgresql://", "postgres://")) as catalog:
        assert catalog.engine.dialect.driver == "psycopg"
    with job_lock(bare, tmp_path):
        pass
