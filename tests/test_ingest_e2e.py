"""End to end through the real CLI, the real PubMed client (Bio.Entrez) and the replay server.

These hold the catalog's promises under the conditions that break them in production: the same
window twice, a hard kill mid-run, and a source that keeps failing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ingest import replay_faults as faults
from ingest.catalog import Catalog
from ingest.replay import ReplayServer
from tests.helpers import ONCOLIT, cli_json, constructed_files, pubmed_env, run_cli

SINCE, UNTIL = "2026-11-02", "2026-11-27"


@pytest.fixture(scope="module")
def server(shared_data: Path):
    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as srv:
        yield srv


@pytest.fixture(scope="module")
def reference_snapshot(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The catalog `ingest pubmed-files` builds from the same files: what every other path must equal."""
    data_dir = tmp_path_factory.mktemp("reference")
    result = cli_json("ingest", "pubmed-files", *map(str, constructed_files(shared_data)),
                      env={"ONCOLIT_DATA_DIR": str(data_dir)})
    assert result["status"] == "ok" and result["counts"]["new"] == 2352
    with Catalog(f"sqlite:///{data_dir / 'catalog.sqlite'}") as catalog:
        return catalog.snapshot()


def catalog_of(data_dir: Path) -> Catalog:
    """The catalog the CLI wrote: ONCOLIT_CATALOG_URL (set by `backend`), else the data dir's file."""
    return Catalog(os.environ.get("ONCOLIT_CATALOG_URL") or f"sqlite:///{data_dir / 'catalog.sqlite'}")


@pytest.fixture
def backend(catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test on SQLite and on PostgreSQL: the CLI (and `catalog_of`) use `catalog_url`."""
    monkeypatch.setenv("ONCOLIT_CATALOG_URL", catalog_url)
    return catalog_url


def add_search(env: dict[str, str]) -> None:
    run_cli("searches", "add", "everything", "--query", "all[sb]", "--since", SINCE, env=env)


def test_source_window_equals_file_ingest_and_is_idempotent(backend: str, server: ReplayServer, isolated_env: Path,
                                                            reference_snapshot: dict) -> None:
    server.faults.clear()
    env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="250")
    add_search(env)
    [first] = cli_json("ingest", "pubmed", "--search", "everything", "--until", UNTIL, env=env)
    assert first["status"] == "ok"
    assert first["batches"] >= 10, "the window must arrive in several efetch batches"
    assert first["watermark_after"] == UNTIL
    with catalog_of(isolated_env) as catalog:
        assert catalog.snapshot() == reference_snapshot
    # The same window again: nothing changes.
    [second] = cli_json("ingest", "pubmed", "--search", "everything", "--since", SINCE, "--until", UNTIL, env=env)
    assert set(second["counts"]) == {"unchanged"}
    with catalog_of(isolated_env) as catalog:
        assert catalog.snapshot() == reference_snapshot
        assert catalog.get_search("everything")["watermark"].isoformat() == UNTIL


def test_sigkill_mid_run_then_rerun_holds_every_record_once(backend: str, server: ReplayServer, isolated_env: Path,
                                                           reference_snapshot: dict) -> None:
    server.faults.clear()
    # The 5th efetch hangs, so the kill lands while a batch is in flight, after 4 committed ones.
    plan_start = server.faults.count("efetch")
    server.faults.on_request("efetch", plan_start + 5, faults.delay(30))
    env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="100", ONCOLIT_PUBMED__RETRY__TIMEOUT="60")
    add_search(env)
    proc = subprocess.Popen([*ONCOLIT, "ingest", "pubmed", "--search", "everything", "--until", UNTIL],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while server.faults.count("efetch") < plan_start + 5:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the ingest never reached the hanging request"
            time.sleep(0.05)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with catalog_of(isolated_env) as catalog:
        assert catalog.get_search("everything")["watermark"].isoformat() == SINCE, "watermark moved before the window finished"
        partial = catalog.stats()["total"]["records"]
    assert 0 < partial < 2352 and partial % 100 == 0, f"only whole batches may be committed, found {partial}"

    server.faults.clear()
    [rerun] = cli_json("ingest", "pubmed", "--search", "everything", "--until", UNTIL, env=env)
    assert rerun["status"] == "ok"
    with catalog_of(isolated_env) as catalog:
        assert catalog.snapshot() == reference_snapshot
        assert catalog.get_search("everything")["watermark"].isoformat() == UNTIL


def test_persistent_failure_is_a_clear_error_with_nothing_half_written(backend: str, server: ReplayServer,
                                                                       isolated_env: Path) -> None:
    server.faults.clear()
    start = server.faults.count("efetch")
    env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="200", ONCOLIT_PUBMED__RETRY__MAX_ATTEMPTS="2")
    add_search(env)
    # Two good batches, then every efetch answers 500.
    for n in range(3, 60):
        server.faults.on_request("efetch", start + n, faults.status(500))
    proc = run_cli("ingest", "pubmed", "--search", "everything", "--until", UNTIL, env=env, check=False)
    server.faults.clear()
    assert proc.returncode != 0
    # Retry warnings are logged as they happen; the failure itself is one `error:` line, last.
    errors = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().endswith(errors[0]) and "attempts" in errors[0], proc.stderr
    with catalog_of(isolated_env) as catalog:
        assert catalog.stats()["total"]["records"] == 400
        assert catalog.get_search("everything")["watermark"].isoformat() == SINCE
        run = catalog.runs(1)[0]
        assert run["status"] == "failed" and run["counts"] == {"new": 400} and "attempts" in run["error"]


@pytest.mark.parametrize("fault", [faults.truncate(0.5), faults.malformed(), faults.billion_laughs(), faults.xxe(),
                                   faults.status(429, retry_after=0), faults.status(503)],
                         ids=["truncated", "malformed", "billion-laughs", "xxe", "429", "503"])
def test_transient_faults_are_retried_to_the_same_catalog(server: ReplayServer, isolated_env: Path, fault,
                                                          reference_snapshot: dict) -> None:
    server.faults.clear()
    server.faults.add("efetch", fault)
    server.faults.add("esearch", fault)
    env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="1000")
    add_search(env)
    [summary] = cli_json("ingest", "pubmed", "--search", "everything", "--until", UNTIL, env=env)
    assert summary["status"] == "ok"
    with catalog_of(isolated_env) as catalog:
        assert catalog.snapshot() == reference_snapshot


def test_records_the_source_never_delivers_hold_the_watermark(backend: str, server: ReplayServer, isolated_env: Path) -> None:
    server.faults.clear()
    server.faults.always("efetch", faults.drop_records(1))
    env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="1000")
    add_search(env)
    try:
        [summary] = cli_json("ingest", "pubmed", "--search", "everything", "--until", UNTIL, env=env, expect=3)
    finally:
        server.faults.clear()
    assert summary["status"] == "partial" and summary["missing"]
    assert summary["watermark_after"] is None
    with catalog_of(isolated_env) as catalog:
        assert catalog.get_search("everything")["watermark"].isoformat() == SINCE
        assert catalog.stats()["total"]["records"] == 2352 - len(summary["missing"])
    # Once the source delivers them, the next run completes the window and moves the watermark.
    [rerun] = cli_json("ingest", "pubmed", "--search", "everything", "--until", UNTIL, env=env)
    assert rerun["status"] == "ok" and rerun["counts"]["new"] == len(summary["missing"])
    assert rerun["watermark_after"] == UNTIL
