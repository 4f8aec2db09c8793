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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from ingest.curation import Curation
from ingest.errors import RecordNotFound
from ingest.lock import AdvisoryLock, LockBusy, job_lock
from ingest.pubmed import PubMedSource
from ingest.replay import ReplayServer
from ingest.source import Query, Window
from oncolit.api_routes.records import _record
from oncolit.resources import open_resources
from oncolit.settings import Settings
from tests.helpers import ONCOLIT, pubmed_env

# The constructed PubMed files enter 2026-11-02 .. 2026-11-27; the test takes the second half (~1,200 records).
SINCE, UNTIL = "2026-11-16", "2026-11-27"


@pytest.fixture(scope="module")
def server(shared_data: Path):
    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as srv:
        yield srv


class Follower(threading.Thread):
    """Reads the catalog as the HTTP server and the index sync do, until told to stop: pages of
    `changed_since` from its saved position (the index sync's read), and each new record by id through
    `read` — GET /records/{id} over HTTP (`http_reader`), or the route's body over the server's `Resources`
    (`route_reader`: no HTTP layer, whose start-up loads the embedding model, ~13 s)."""

    def __init__(self, url: str, read: Callable[[str], dict[str, Any]]):
        super().__init__(daemon=True)
        self.catalog = Catalog(url)
        self.read = read
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
                            record = self.read(row["id"])
                            assert record["version"] >= 1 and record["curation"]["excluded"] is False, record
                            self.reads += 1
                    seq, after = page[-1]["change_seq"], page[-1]["id"]
            except (RecordNotFound, AssertionError, httpx.HTTPError) as exc:
                self.errors.append(repr(exc))
            if stopping:
                self.catalog.close()
                return
            time.sleep(0.05)


@contextmanager
def route_reader(url: str) -> Iterator[Callable[[str], dict[str, Any]]]:
    with Catalog(url) as catalog, open_resources(Settings(catalog_url=url), catalog=catalog) as res:
        yield lambda rid: _record(res, rid)


@contextmanager
def http_reader(url: str, env: dict[str, str]) -> Iterator[Callable[[str], dict[str, Any]]]:
    """`oncolit serve` on a free loopback port over the same catalog, once it answers /healthz."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*ONCOLIT, "serve", "--port", str(port)], env={**env, "ONCOLIT_CATALOG_URL": url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, "oncolit serve exited"
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "oncolit serve never answered /healthz"
                time.sleep(0.2)

            def read(rid: str) -> dict[str, Any]:
                response = client.get(f"/records/{rid}")
                response.raise_for_status()
                data: dict[str, Any] = response.json()
                return data

            yield read
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def run_everything_at_once(server: ReplayServer, pg_url: str, http: bool) -> None:
    """Two ingest workers + `oncolit schedule run-once` + a follower reading what they commit."""
    server.faults.clear()
    env = {**os.environ, **pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="50"),
           "ONCOLIT_CATALOG_URL": pg_url, "ONCOLIT_SCHEDULE__FOLLOW_ON": "[]"}
    with Catalog(pg_url) as catalog:
        catalog.add_search("everything", "pubmed", "all[sb]", watermark=dt.date.fromisoformat(SINCE))
        # An active rule: every writer then caches a verdict per record it stores (evaluate_batch), the
        # same records from all three at once (the verdict upsert's race).
        curation = Curation(catalog)
        curation.add_user("boot", "ada", "admin")
        curation.add_rule("ada", "exclude", "language", "fre", "French is out of scope")
    # What the union of the windows holds, asked of the source itself (esearch's count), not of the catalog.
    total = PubMedSource(Settings(**{"pubmed": {"base_url": server.eutils_url}}).pubmed).count(
        Query("all[sb]"), Window(dt.date.fromisoformat(SINCE), dt.date.today()))
    assert 500 < total < 2352
    with http_reader(pg_url, env) if http else route_reader(pg_url) as read:
        follower = Follower(pg_url, read)
        follower.start()
        # The same window for all three writers, so the same records arrive from them at about the same time.
        workers = [subprocess.Popen([sys.executable, "-m", "tests.pg_worker", pg_url, SINCE, UNTIL], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
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
        assert stats["records"] == total, "a record was lost"
        assert stats["versions"] == total, "a record was stored twice (a second version of the same content)"
        with catalog.engine.connect() as conn:
            assert conn.execute(select(func.max(t.records.c.current_version))).scalar_one() == 1
        # Each writer's counts add up: every delivery of a record is new exactly once, else unchanged.
        counts = [s["counts"] for s in summaries[:2]] + [summaries[2]["ingest"]["counts"]]
        assert sum(c.get("new", 0) for c in counts) == total, counts
        ids = {row[0] for row in catalog.snapshot()["records"]}
        with catalog.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM curation_verdicts")).scalar_one() == total
    assert not follower.errors, follower.errors[:3]
    assert follower.seen == ids, f"the change_seq follower missed {len(ids - follower.seen)} records"
    assert follower.reads == total


def test_two_workers_the_scheduler_and_readers_lose_and_duplicate_nothing(
        server: ReplayServer, pg_url: str, isolated_env: Path) -> None:
    run_everything_at_once(server, pg_url, http=False)


@pytest.mark.slow
def test_the_same_with_the_http_server_reading_over_http(server: ReplayServer, pg_url: str,
                                                         isolated_env: Path) -> None:
    """As above, the reader being `oncolit serve` (GET /records/{id}) on the same PostgreSQL catalog."""
    run_everything_at_once(server, pg_url, http=True)


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


def test_a_batch_committing_late_is_never_behind_a_follower(pg_url: str) -> None:
    """The race the change_seq lock closes, forced instead of hoped for: batch A takes its seq and is held
    before commit (a row it updates is locked); batch B, started after, must not commit a seq a follower
    can pass before A's records appear. Without the lock B commits the same seq, the follower's position
    moves past A's ids, and A's records are never followed (the index would never get them)."""
    from ingest.records import Article
    from ingest.source import ParsedItem

    def items(*pmids: str, title: str = "t") -> list[ParsedItem]:
        return [ParsedItem(Article(pmid=p, title=title), b"<PubmedArticle/>", "pubmed-xml") for p in pmids]

    def waiting(conn: Any) -> int:
        return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"))
                   .scalar_one())

    with Catalog(pg_url) as catalog:
        catalog.ingest(items("1"))
        start = catalog.max_change_seq()
        blocker = catalog.engine.connect()
        watcher = catalog.engine.connect()
        watcher.execution_options(isolation_level="AUTOCOMMIT")
        try:
            blocker.execute(text("SELECT id FROM records WHERE id = 'pubmed:1' FOR UPDATE"))
            a = threading.Thread(target=catalog.ingest, args=(items("1", "100", "101", title="revised"),))
            a.start()
            deadline = time.monotonic() + 30
            while waiting(watcher) < 1:  # A holds its seq, stuck on the locked row
                assert time.monotonic() < deadline
                time.sleep(0.05)
            b = threading.Thread(target=catalog.ingest, args=(items("900", "901"),))
            b.start()
            while b.is_alive() and waiting(watcher) < 2:  # B either commits (no turn-taking) or waits for A
                assert time.monotonic() < deadline
                time.sleep(0.05)
            seen, seq, after = set(), start, None
            for page in catalog.changed_since(seq):  # a follower reads now, while A is held
                seen.update(r["id"] for r in page)
                seq, after = page[-1]["change_seq"], page[-1]["id"]
            blocker.rollback()
            a.join(timeout=30)
            b.join(timeout=30)
            for page in catalog.changed_since(seq, after_id=after):  # and again once everything committed
                seen.update(r["id"] for r in page)
        finally:
            blocker.close()
            watcher.close()
    assert seen == {"pubmed:1", "pubmed:100", "pubmed:101", "pubmed:900", "pubmed:901"}


def test_the_lock_session_probes_a_vanished_holder_within_a_minute(pg_url: str, tmp_path: Path) -> None:
    lock = job_lock(pg_url, tmp_path)
    assert isinstance(lock, AdvisoryLock)
    with lock:
        settings = {name: lock._conn.execute(text(f"SHOW {name}")).scalar_one()
                    for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")}
    assert settings == {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}
