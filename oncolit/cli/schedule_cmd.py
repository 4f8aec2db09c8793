"""`oncolit schedule …`: the daemon that runs each saved search on its cron, and its inspection."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import typer

from ingest.errors import OncoLitError
from oncolit.cli.common import EXIT_PARTIAL, JsonOpt, emit, exit_with, get_settings

if TYPE_CHECKING:  # the scheduler, the catalog and the job chain load when a command runs, not for --help
    from apscheduler.schedulers.base import BaseScheduler

    from ingest.catalog import Catalog

app = typer.Typer(help="Run saved searches on their schedules.", no_args_is_help=True)
log = logging.getLogger(__name__)


def _scheduler(cls: type[BaseScheduler] | None = None) -> BaseScheduler:
    from ingest.scheduler import build_scheduler

    s = get_settings()
    s.ensure_data_dir()
    kwargs = {"scheduler_cls": cls} if cls else {}
    return build_scheduler(s.resolved_catalog_url, timezone=s.schedule.timezone,
                           misfire_grace_seconds=s.schedule.misfire_grace_seconds, **kwargs)


@contextmanager
def _paused_scheduler() -> Iterator[tuple[BaseScheduler, Catalog]]:
    """A scheduler with no loop: reads and edits the job store and can never fire a job."""
    from ingest.catalog import Catalog
    from ingest.scheduler import InertScheduler

    s = get_settings()
    scheduler = _scheduler(InertScheduler)
    with Catalog(s.resolved_catalog_url) as catalog:
        scheduler.start(paused=True)
        try:
            yield scheduler, catalog
        finally:
            scheduler.shutdown(wait=False)


@app.command("list")
def list_(as_json: bool = JsonOpt) -> None:
    """Jobs with their next run times and the last outcome of each."""
    from ingest.scheduler import describe_jobs, sync_jobs

    s = get_settings()
    with _paused_scheduler() as (scheduler, catalog):
        sync_jobs(scheduler, catalog, s.schedule.ingest_cron, s.schedule.timezone)
        rows = describe_jobs(scheduler, catalog)
    text = "\n".join(
        f"{r['id']:<36} next {r['next_run'] or 'paused'}  last "
        f"{(r['last_run'] or {}).get('status', '-')}" for r in rows) or "no jobs (add saved searches first)"
    emit(rows, as_json, text)


@app.command("run-once")
def run_once(job: str = typer.Argument(..., help="Job id (ingest:pubmed:NAME) or saved search name."),
             as_json: bool = JsonOpt) -> None:
    """Run one job's chain now, in the foreground (waits for a running job to finish)."""
    from oncolit import jobs

    s = get_settings()
    name = job.split(":", 2)[2] if job.startswith("ingest:") and job.count(":") >= 2 else job
    result = jobs.run_job(name, s, wait=600.0)  # in the server when `oncolit serve` owns the data dir
    if result["status"] == "skipped":
        raise OncoLitError(result["reason"])
    emit(result, as_json, f"{name}: {result['status']} {result['ingest']['counts']}")
    if result["status"] != "ok":
        steps = "; ".join(f"{step} {result[step].get('status')}: {result[step].get('error') or 'see --json'}"
                          for step in result["failed_steps"])
        ingest = result["ingest"]
        committed = ", ".join(f"{k} {v}" for k, v in sorted(ingest["counts"].items())) or "no records"
        prefix = "error: " if result["failed_steps"] else "partial: "
        exit_with(EXIT_PARTIAL, f"{prefix}{name}: the ingest committed {committed} ({ingest['status']}"
                  + (f": {ingest['error']}" if ingest.get("error") else "") + ")"
                  + (f"; follow-on steps not done: {steps}" if steps else ""))


@app.command("run")
def run() -> None:
    """Run the scheduler in the foreground until SIGTERM/SIGINT.

    On a signal the running ingest finishes its current batch and stops (its watermark stays, so
    the next start redoes the rest); runs missed while the machine was off are caught up once.
    """
    from ingest.lock import LockBusy, ProcessLock
    from ingest.scheduler import sync_jobs
    from oncolit import jobs
    from oncolit.owner import running_server

    s = get_settings()
    only_one = ProcessLock(s.ensure_data_dir() / "scheduler.lock")
    try:
        only_one.acquire()
    except LockBusy:
        server = running_server(s)
        where = (f"inside {server.describe()}" if server is not None and server.scheduler else "in another process")
        raise OncoLitError(f"the scheduler already runs {where}: one scheduler per data dir (stop that one, or "
                           "start the server with `oncolit serve --no-schedule`)") from None
    with _paused_scheduler() as (paused, catalog):
        report = sync_jobs(paused, catalog, s.schedule.ingest_cron, s.schedule.timezone)
        if not paused.get_jobs():
            raise OncoLitError("no saved searches to schedule; add one with `oncolit searches add`")
    log.warning("scheduler starting", extra={"jobs": report})
    scheduler = _scheduler()

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.warning("received %s: finishing the current batch, then stopping", signal.Signals(signum).name)
        jobs.STOP.set()
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    scheduler.start()  # blocks until stop()
