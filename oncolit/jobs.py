"""The job chain the scheduler runs: ingest one saved search, then the follow-on steps.

Follow-on steps (index sync, extraction, digests) run after every successful ingest, in the order
of `settings.schedule.follow_on`; each is a function of (settings, catalog) returning a JSON-able summary
with a `status`. A step that fails is logged and reported without undoing the ingest before it (the
catalog is the truth; derived steps catch up on their next run because they work from change
sequences, not from time) — but the chain's own `status` is then `partial`, never `ok`, and
`failed_steps` names them: a chain whose sync or digests failed did not do its job.

Jobs are referenced by import path ("oncolit.jobs:run_search_job") so the persistent job store
can reload them in a new process.

One data dir, one index owner (`oncolit.owner`): inside `oncolit serve` the index steps run on the server's
own resources (`owner.local_index()`), and in any other process while a server owns the data dir a job is
sent to that server whole (`run_job` -> POST /local/jobs/run), so the chain never opens the index twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ingest.catalog import Catalog
from ingest.curation import Curation
from ingest.lock import IngestLock, LockBusy, job_lock
from ingest.pipeline import run_search
from oncolit.owner import local_index
from oncolit.settings import Settings
from oncolit.wiring import open_source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Settings, Catalog], dict[str, Any]]


def sync_index(settings: Settings, catalog: Catalog, handle: Any, *, full: bool = False,
               progress: Callable[[int], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Sync (or with `full` rebuild) `handle`'s collection from the catalog: what `oncolit index sync --json`
    prints, wherever it runs (the CLI, the server's /local/index/sync, the scheduler's step)."""
    from index.sync import rebuild, sync

    started = time.perf_counter()
    pending = catalog.max_change_seq()
    report = (rebuild if full else sync)(catalog, handle, batch_size=settings.index.sync_batch_size,
                                         is_excluded=Curation(catalog).exclusions().__contains__,
                                         progress=progress, should_stop=should_stop)
    data = report.as_dict()
    data["points_total"] = handle.store.count()
    data["catalog_seq"] = pending
    data["timings"]["total"] = round(time.perf_counter() - started, 3)
    return data


def _index_sync(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    from oncolit.wiring import open_index

    here = local_index()
    if here is not None:  # inside `oncolit serve`: its own handle, on its worker thread
        data = here.run(lambda res: sync_index(settings, res.catalog, res.index, should_stop=STOP.is_set))
    else:
        with open_index(settings) as handle:
            data = sync_index(settings, catalog, handle, should_stop=STOP.is_set)
    return {"status": "interrupted" if data.get("stopped") else "ok", **data}


def _digests(settings: Settings, catalog: Catalog) -> dict[str, Any]:
    from oncolit.delivery.run import run_digests

    here = local_index()
    if here is not None:
        return here.run(lambda res: run_digests(settings, res.catalog, resources=res))
    return run_digests(settings, catalog)


# Every follow-on step there is, by name; `settings.schedule.follow_on` picks which run, in order.
STEPS: dict[str, Step] = {step.name: step for step in (
    Step("index_sync", _index_sync),
    Step("digests", _digests),  # last: digests read the freshly synced index
)}

# Set by `oncolit schedule run` on SIGTERM/SIGINT: the running ingest finishes its current batch,
# stops, and leaves the watermark where it was.
STOP = threading.Event()


def ingest_lock(settings: Settings, wait: float = 0.0) -> IngestLock:
    """The file lock in the data dir on SQLite; an advisory lock in the database on PostgreSQL, so
    schedulers on several machines sharing one catalog take turns too."""
    return job_lock(settings.resolved_catalog_url, settings.ensure_data_dir(), "ingest", wait=wait)


def run_search_job(search_name: str, settings: Settings | None = None) -> dict[str, Any]:
    """Scheduled entry point. Skips (with a log line) if another OncoLit run holds the lock."""
    return run_job(search_name, settings or Settings())


def run_job(search_name: str, settings: Settings, *, wait: float = 0.0) -> dict[str, Any]:
    """One saved search's chain under the ingest lock (waiting up to `wait` s for a running one; skipped when
    it is still held). While an `oncolit serve` in another process owns the data dir, the server runs it."""
    from oncolit.via_server import JobRequest, call_server

    remote = call_server(settings, "/local/jobs/run", JobRequest(search=search_name, wait=wait))
    if remote is not None:
        return dict(remote)
    lock = ingest_lock(settings, wait=wait)
    try:
        lock.acquire()
    except LockBusy as exc:
        log.warning("skipped scheduled run of %s: %s", search_name, exc, extra={"search": search_name})
        return {"search": search_name, "status": "skipped", "reason": str(exc)}
    try:
        return run_chain(search_name, settings)
    finally:
        lock.release()


def run_chain(search_name: str, settings: Settings) -> dict[str, Any]:
    """Ingest + follow-on steps for one search; the caller holds the ingest lock."""
    with Catalog(settings.resolved_catalog_url) as catalog:
        search = catalog.get_search(search_name)
        with open_source(search["source"], settings) as source:
            summary = run_search(catalog, source, search=search, initial_lookback_days=settings.initial_lookback_days,
                                 should_stop=STOP.is_set)
        result: dict[str, Any] = {"search": search_name, "status": summary.status, "ingest": summary.as_dict()}
        failed: list[str] = []
        for name in settings.schedule.follow_on:
            step = STEPS.get(name)
            if step is None:
                result[name] = {"status": "failed", "error": f"unknown step; known: {', '.join(STEPS)}"}
            else:
                try:
                    result[step.name] = step.run(settings, catalog)
                except Exception as exc:  # a derived step must not undo or block ingestion
                    log.exception("follow-on step %s failed", step.name)
                    result[step.name] = {"status": "failed", "error": str(exc)}
            if result[name].get("status") not in ("ok", "skipped"):
                failed.append(name)
        result["failed_steps"] = failed
        if failed and result["status"] == "ok":
            result["status"] = "partial"  # the ingest is committed; what follows it is not done
    return result
