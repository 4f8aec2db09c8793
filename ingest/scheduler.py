"""APScheduler wiring: one cron job per active saved search, kept in the catalog database.

Why these settings: `coalesce` folds a backlog of missed runs into one; `max_instances=1` stops a
slow run from overlapping its next firing; `misfire_grace_time=None` (the default here) lets a run
missed while the machine was off still happen on the next start — once, thanks to coalesce — and
because every run starts at its search's watermark, that one run covers the whole gap.
Cross-process overlap (a manual `oncolit ingest` during a scheduled run) is prevented by the
ingest lock inside the job itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from ingest.catalog import Catalog
from ingest.errors import ConfigError

log = logging.getLogger(__name__)

JOB_FUNC = "oncolit.jobs:run_search_job"
JOB_TABLE = "apscheduler_jobs"


class InertScheduler(BaseScheduler):
    """A scheduler with no loop of its own: it runs jobs only when `tick()` is called.

    Used to read and edit the job store (`oncolit schedule list`, syncing before `run`) without any
    chance of firing — or consuming — a due job, and by tests that drive time themselves.
    """

    def wakeup(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def tick(self) -> None:
        self._process_jobs()


def job_id(source: str, name: str) -> str:
    return f"ingest:{source}:{name}"


def build_scheduler(catalog_url: str, *, timezone: str = "UTC", misfire_grace_seconds: int | None = None,
                    scheduler_cls: type[BaseScheduler] = BlockingScheduler, executor: Any = None) -> BaseScheduler:
    return scheduler_cls(
        jobstores={"default": SQLAlchemyJobStore(url=catalog_url, tablename=JOB_TABLE)},
        executors={"default": executor or ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_seconds},
        timezone=timezone,
    )


def trigger_for(cron: str, timezone: str) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(cron, timezone=timezone)
    except ValueError as exc:
        raise ConfigError(f"invalid cron expression {cron!r}: {exc}") from exc


def sync_jobs(scheduler: BaseScheduler, catalog: Catalog, default_cron: str, timezone: str) -> dict[str, list[str]]:
    """Make the job store match the saved searches, without losing a pending (missed) run time.

    A job whose trigger is unchanged is left alone — replacing it would recompute its next run
    time and silently drop a run missed while the scheduler was down.
    """
    wanted = {job_id(s["source"], s["name"]): s for s in catalog.list_searches() if s["active"]}
    existing = {job.id: job for job in scheduler.get_jobs() if job.id.startswith("ingest:")}
    report: dict[str, list[str]] = {"added": [], "rescheduled": [], "removed": [], "kept": []}
    for jid, search in wanted.items():
        trigger = trigger_for(search["schedule"] or default_cron, timezone)
        job = existing.get(jid)
        if job is None:
            scheduler.add_job(JOB_FUNC, trigger, args=[search["name"]], id=jid, name=jid)
            report["added"].append(jid)
        elif str(job.trigger) != str(trigger):
            scheduler.reschedule_job(jid, trigger=trigger)
            report["rescheduled"].append(jid)
        else:
            report["kept"].append(jid)
    for jid in existing.keys() - wanted.keys():
        scheduler.remove_job(jid)
        report["removed"].append(jid)
    return report


def describe_jobs(scheduler: BaseScheduler, catalog: Catalog) -> list[dict[str, Any]]:
    """Each job with its next run time and the outcome of the last run of its search."""
    last_runs: dict[str, dict[str, Any]] = {}
    for run in catalog.runs(limit=500):
        if run["search_name"] and run["search_name"] not in last_runs:
            last_runs[run["search_name"]] = run
    out = []
    for job in sorted(scheduler.get_jobs(), key=lambda j: j.id):
        name = job.args[0] if job.args else None
        last = last_runs.get(name or "")
        next_run = getattr(job, "next_run_time", None)
        out.append({
            "id": job.id, "search": name, "trigger": str(job.trigger),
            "next_run": next_run.isoformat() if isinstance(next_run, dt.datetime) else None,
            "last_run": None if last is None else {
                "status": last["status"], "started_at": last["started_at"], "finished_at": last["finished_at"],
                "counts": last["counts"], "error": last["error"]},
        })
    return out
