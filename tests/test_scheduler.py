"""The scheduler: cron firing under a controlled clock, catch-up after downtime, no overlap, SIGTERM."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import time_machine
from apscheduler.executors.debug import DebugExecutor

from ingest import replay_faults as faults
from ingest.catalog import Catalog
from ingest.replay import ReplayServer
from ingest.scheduler import InertScheduler, build_scheduler, describe_jobs, job_id, sync_jobs
from oncolit import jobs
from oncolit.settings import Settings
from oncolit.wiring import make_annotator, open_index
from tests.helpers import ONCOLIT, cli_json, pubmed_env, run_cli

UTC = dt.UTC


@pytest.fixture(scope="module")
def server(shared_data: Path):
    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as srv:
        yield srv


@pytest.fixture
def env(server: ReplayServer, monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> Settings:
    server.faults.clear()
    for key, value in pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="500").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ONCOLIT_SCHEDULE__FOLLOW_ON", "[]")  # the chain's own test turns steps on
    settings = Settings()
    settings.ensure_data_dir()
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.add_search("everything", "pubmed", "all[sb]", schedule="0 6 * * *",
                           watermark=dt.date(2026, 11, 2))
    return settings


def manual_scheduler(settings: Settings) -> InertScheduler:
    scheduler = build_scheduler(settings.resolved_catalog_url, scheduler_cls=InertScheduler, executor=DebugExecutor())
    scheduler.start()
    with Catalog(settings.resolved_catalog_url) as catalog:
        sync_jobs(scheduler, catalog, settings.schedule.ingest_cron, "UTC")
    return scheduler


def runs(settings: Settings) -> list[dict]:
    with Catalog(settings.resolved_catalog_url) as catalog:
        return list(reversed(catalog.runs(100)))


def test_jobs_fire_on_schedule_and_a_missed_gap_is_caught_up_once(env: Settings) -> None:
    with time_machine.travel(dt.datetime(2026, 11, 10, 5, 0, tzinfo=UTC), tick=False) as clock:
        scheduler = manual_scheduler(env)
        scheduler.tick()
        assert runs(env) == [], "nothing is due before 06:00"
        clock.move_to(dt.datetime(2026, 11, 10, 6, 0, 5, tzinfo=UTC))
        scheduler.tick()
        scheduler.tick()
        assert [(r["window_start"], r["window_end"], r["status"]) for r in runs(env)] == [
            (dt.date(2026, 11, 2), dt.date(2026, 11, 10), "ok")]
        clock.move_to(dt.datetime(2026, 11, 11, 6, 0, 1, tzinfo=UTC))
        scheduler.tick()
        assert len(runs(env)) == 2
        scheduler.shutdown()

        # The machine is off for three days; on the next start the gap is caught up in ONE run.
        clock.move_to(dt.datetime(2026, 11, 14, 10, 30, tzinfo=UTC))
        scheduler = manual_scheduler(env)
        with Catalog(env.resolved_catalog_url) as catalog:
            [job] = describe_jobs(scheduler, catalog)
        assert job["next_run"].startswith("2026-11-12T06:00"), "restarting must keep the missed run time"
        scheduler.tick()
        scheduler.tick()
        history = runs(env)
        assert len(history) == 3
        assert (history[-1]["window_start"], history[-1]["window_end"]) == (dt.date(2026, 11, 11), dt.date(2026, 11, 14))
        scheduler.shutdown()
    with Catalog(env.resolved_catalog_url) as catalog:
        assert catalog.get_search("everything")["watermark"] == dt.date(2026, 11, 14)


def test_sync_follows_saved_searches(env: Settings) -> None:
    scheduler = manual_scheduler(env)
    with Catalog(env.resolved_catalog_url) as catalog:
        catalog.add_search("trials", "ctgov", "melanoma")
        report = sync_jobs(scheduler, catalog, "30 5 * * *", "UTC")
        assert report["added"] == [job_id("ctgov", "trials")] and report["kept"] == [job_id("pubmed", "everything")]
        catalog.remove_search("trials")
        assert sync_jobs(scheduler, catalog, "30 5 * * *", "UTC")["removed"] == [job_id("ctgov", "trials")]
    scheduler.shutdown()


def test_two_runs_never_overlap(env: Settings, server: ReplayServer, caplog: pytest.LogCaptureFixture) -> None:
    server.faults.add("efetch", faults.delay(2))
    seen = server.faults.count("efetch")
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(jobs.run_search_job("everything")))
    worker.start()
    deadline = time.monotonic() + 20
    while server.faults.count("efetch") == seen:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with caplog.at_level(logging.WARNING, logger="oncolit.jobs"):
        second = jobs.run_search_job("everything")
    worker.join(timeout=60)
    assert second["status"] == "skipped"
    assert any("skipped scheduled run of everything" in r.getMessage() for r in caplog.records)
    assert first["status"] == "ok"
    assert len(runs(env)) == 1


def test_sigterm_during_a_scheduled_run_leaves_the_catalog_consistent(env: Settings, server: ReplayServer) -> None:
    # Make the job due now, as if its time had come while the scheduler was down.
    paused = build_scheduler(env.resolved_catalog_url, scheduler_cls=InertScheduler)
    paused.start(paused=True)
    with Catalog(env.resolved_catalog_url) as catalog:
        sync_jobs(paused, catalog, env.schedule.ingest_cron, "UTC")
    paused.modify_job(job_id("pubmed", "everything"), next_run_time=dt.datetime.now(UTC))
    paused.shutdown()

    server.faults.always("efetch", faults.delay(0.4))
    proc_env = {**os.environ, "ONCOLIT_PUBMED__BATCH_SIZE": "100"}
    proc = subprocess.Popen([*ONCOLIT, "schedule", "run"], env=proc_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            with Catalog(env.resolved_catalog_url) as catalog:
                if catalog.stats()["total"]["records"] > 0:
                    break
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the scheduled run never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    server.faults.clear()
    assert proc.returncode == 0, err
    assert "finishing the current batch" in err
    with Catalog(env.resolved_catalog_url) as catalog:
        partial = catalog.stats()["total"]["records"]
        assert 0 < partial < 2352 and partial % 100 == 0
        assert catalog.get_search("everything")["watermark"] == dt.date(2026, 11, 2)
        assert catalog.runs(1)[0]["status"] == "interrupted"
    # The next run completes the window.
    result = cli_json("schedule", "run-once", "everything")
    assert result["status"] == "ok"
    with Catalog(env.resolved_catalog_url) as catalog:
        assert catalog.stats()["total"]["records"] == 2352
        assert catalog.get_search("everything")["watermark"] == dt.date.today()


def test_schedule_list_shows_next_run_and_last_outcome(env: Settings) -> None:
    run_cli("schedule", "run-once", "ingest:pubmed:everything")
    [row] = cli_json("schedule", "list")
    assert row["id"] == "ingest:pubmed:everything" and row["next_run"]
    assert row["last_run"]["status"] == "ok"


def test_chain_runs_index_sync_after_ingest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path) -> None:
    folder = tmp_path / "pubmed"
    folder.mkdir()
    (folder / "update-0001.xml").write_bytes((Path(__file__).parent / "fixtures" / "replay" / "update-0001.xml").read_bytes())
    with ReplayServer(pubmed_dir=folder) as small:
        for key, value in pubmed_env(small.eutils_url).items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("ONCOLIT_SCHEDULE__FOLLOW_ON", '["index_sync"]')
        settings = Settings()
        with Catalog(settings.resolved_catalog_url) as catalog:
            catalog.add_search("small", "pubmed", "all[sb]", watermark=dt.date(2026, 11, 1))
        result = jobs.run_search_job("small", settings)
    assert result["status"] == "ok" and result["ingest"]["counts"]
    assert result["index_sync"]["records_indexed"] >= 1 and result["index_sync"]["points_written"] >= 1
    assert result["index_sync"]["grading"] == make_annotator().fingerprint  # the grader filled the level filters
    with open_index(settings) as handle:
        levels = {h.payload.get("evidence_level") for h in handle.searcher().chunks("cancer", limit=50)}
    assert levels and None not in levels
