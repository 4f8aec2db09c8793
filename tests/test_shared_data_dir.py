"""One data dir for the server, its scheduler and CLI commands at once (issue 16): the owner file, the index's
one-writer lock, and (slow tier) a real `oncolit serve` with a scheduled ingest + sync while CLI commands run."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.errors import ConfigError, IndexBusy
from oncolit.owner import ServerClaim, hold_index, owner_path, running_server
from oncolit.settings import Settings
from oncolit.via_server import SearchRequest, call_server, serving_owner
from tests.helpers import ONCOLIT, pubmed_env

HOLD = """
import time
from oncolit.owner import hold_index
from oncolit.settings import Settings
with hold_index(Settings()):
    print("held", flush=True)
    time.sleep(30)
"""


def test_the_owner_file_is_private_names_the_server_and_goes_away(isolated_env: Path) -> None:
    settings = Settings()
    assert running_server(settings) is None
    with ServerClaim(settings, "http://127.0.0.1:8123", scheduler=True) as owner:
        path = owner_path(settings)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the loopback token
        found = running_server(settings)
        assert found == owner and found.pid == os.getpid() and found.scheduler
        assert json.loads(path.read_text())["url"] == "http://127.0.0.1:8123"
        assert serving_owner(settings) is None  # this process is the server: never call yourself
        with pytest.raises(ConfigError, match=r"pid \d+ at http://127.0.0.1:8123 already serves the data dir"):
            with ServerClaim(settings, "http://127.0.0.1:8124"):
                pass
    assert not path.exists() and running_server(settings) is None


def test_a_stale_owner_file_is_ignored_even_with_a_live_pid(isolated_env: Path) -> None:
    """A SIGKILLed server leaves its file; no lock is held on it, so it is stale whatever its pid says."""
    settings = Settings()
    settings.ensure_data_dir()
    owner_path(settings).write_text(json.dumps({"pid": os.getppid(), "url": "http://127.0.0.1:9", "token": "t",
                                                "started_at": "2026-12-01T00:00:00+00:00",
                                                "data_dir": str(settings.data_dir)}))
    assert running_server(settings) is None
    req = SearchRequest(query="melanoma")
    assert call_server(settings, "/local/search", req) is None  # the command does the work itself
    with ServerClaim(settings, "http://127.0.0.1:8125") as owner:  # a new server takes the file over
        assert running_server(settings) == owner


def test_a_second_opener_of_the_index_names_the_holder_and_gives_up_clearly(isolated_env: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        said: list[str] = []
        started = time.monotonic()
        with pytest.raises(IndexBusy) as caught:
            with hold_index(Settings(), wait=0.6, notify=said.append):
                pass
        assert time.monotonic() - started >= 0.6
        assert said == [f"index is held by `oncolit` pid {holder.pid}; waiting… (Ctrl-C to stop)"]
        assert f"still held by `oncolit` pid {holder.pid} after 1s" in str(caught.value)
    finally:
        holder.kill()
        holder.wait()
    with hold_index(Settings(), wait=0), hold_index(Settings(), wait=0):  # free again, and nestable in a process
        pass


def test_schedule_run_refuses_while_the_server_runs_the_scheduler(isolated_env: Path) -> None:
    from ingest.lock import ProcessLock

    settings = Settings()
    with ServerClaim(settings, "http://127.0.0.1:8126", scheduler=True) as owner, \
            ProcessLock(settings.ensure_data_dir() / "scheduler.lock"):  # what the server's scheduler holds
        proc = subprocess.run([*ONCOLIT, "schedule", "run"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"error: the scheduler already runs inside {owner.describe()}: one scheduler per "
                                   "data dir (stop that one, or start the server with `oncolit serve --no-schedule`)")


# ------------------------------------------------------------------------------------------ the whole thing

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cli(*args: str, env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ONCOLIT, *args], capture_output=True, text=True, env={**os.environ, **env},
                          timeout=timeout)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    assert "WAL" not in proc.stderr and "Qdrant Edge could not open" not in proc.stderr, proc.stderr
    return proc.stdout


@pytest.mark.slow  # a real server start (~20 s on 2 cores) and two embedding passes
def test_serve_its_scheduled_ingest_and_sync_and_cli_commands_share_one_data_dir(
        shared_data: Path, isolated_env: Path) -> None:
    from apscheduler.executors.debug import DebugExecutor

    from ingest.catalog import Catalog
    from ingest.replay import ReplayServer
    from ingest.scheduler import InertScheduler, build_scheduler, job_id, sync_jobs

    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as replay:
        env = {**pubmed_env(replay.eutils_url), "ONCOLIT_LLM__BACKEND": "none", "ONCOLIT_FINDINGS__MODELS": "none",
               "ONCOLIT_SCHEDULE__FOLLOW_ON": '["index_sync"]', "ONCOLIT_INDEX__WAIT_SECONDS": "120"}
        # Before the server: the first records, indexed directly.
        _ok(_cli("ingest", "pubmed", "--query", "melanoma[tiab]", "--since", "2026-11-01", "--until", "2026-11-10",
                 env=env))
        first = json.loads(_ok(_cli("index", "sync", "--json", env=env)))
        assert first["records_indexed"] > 0
        # A saved search whose daily run was missed (due an hour ago): the server's scheduler runs it on start.
        settings = Settings()
        with Catalog(settings.resolved_catalog_url) as catalog:
            catalog.add_search("melanoma", "pubmed", "melanoma[tiab]", schedule="0 6 * * *",
                               watermark=dt.date(2026, 11, 11))
            inert = build_scheduler(settings.resolved_catalog_url, scheduler_cls=InertScheduler,
                                    executor=DebugExecutor())
            inert.start(paused=True)
            sync_jobs(inert, catalog, "0 6 * * *", "UTC")
            inert.modify_job(job_id("pubmed", "melanoma"),
                             next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
            inert.shutdown()

        port = _free_port()
        log = (isolated_env.parent / "serve.log").open("w")
        server = subprocess.Popen([*ONCOLIT, "serve", "--port", str(port)], env={**os.environ, **env},
                                  stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            claimed = time.monotonic() + 60
            while running_server(settings) is None and server.poll() is None and time.monotonic() < claimed:
                time.sleep(0.1)  # the claim comes first, before the models load
            # CLI searches from the claim on: they wait for the starting server, then go through it.
            searches = 0
            deadline = time.monotonic() + 240
            while True:
                found = json.loads(_ok(_cli("search", "melanoma", "--mode", "sparse", "--limit", "3", "--json",
                                            env=env)))
                assert set(found) == {"query", "expansions", "results"} and found["results"]
                searches += 1
                with Catalog(settings.resolved_catalog_url) as catalog:
                    runs = [r for r in catalog.runs(20) if r["search_name"] == "melanoma"]
                if runs and runs[0]["status"] == "ok" and _synced(settings):
                    break
                assert server.poll() is None, (isolated_env.parent / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the scheduled run did not finish"
                time.sleep(1)
            owner = running_server(settings)
            assert owner is not None and owner.pid == server.pid and owner.url == f"http://127.0.0.1:{port}"
            # `index sync` goes to the server: the scheduled step already indexed everything.
            again = json.loads(_ok(_cli("index", "sync", "--json", env=env)))
            assert again["records_indexed"] == 0 and again["points_total"] > first["points_total"]
            answered = json.loads(_ok(_cli("ask", "Does BRAF inhibition help melanoma?", "--backend", "none",
                                           "--json", env=env)))
            via_server = json.loads(_ok(_cli("search", "melanoma", "--limit", "5", "--json", env=env)))
            import httpx  # the /local routes take the owner file's token (or an admin key), nothing else

            for headers in ({}, {"Authorization": "Bearer not-the-token"}):
                refused = httpx.post(f"{owner.url}/local/index/sync", json={"full": True}, headers=headers)
                assert refused.status_code == 401, refused.text
            checked = json.loads(_ok(_cli("index", "verify", "--json", env=env)))  # through the server too
            assert checked["ok"] and checked["records_checked"] > first["records_indexed"]
            # Whatever opens the index itself waits for the writer, naming it, then stops clearly.
            said: list[str] = []
            with pytest.raises(IndexBusy, match=rf"still held by `oncolit serve` pid {server.pid} at {owner.url}"):
                with hold_index(settings, wait=0.5, notify=said.append):
                    pass
            assert said == [f"index is held by `oncolit serve` pid {server.pid} at {owner.url}; waiting… "
                            "(Ctrl-C to stop)"]
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
            log.close()
        served = (isolated_env.parent / "serve.log").read_text()
        assert served.count("POST /local/search") >= searches + 1 and "POST /local/index/sync" in served
        assert "POST /local/ask" in served and "POST /local/index/verify" in served
        assert not owner_path(settings).exists()

        # Without the server: the same commands, the same JSON, and nothing was lost.
        assert json.loads(_ok(_cli("search", "melanoma", "--limit", "5", "--json", env=env))) == via_server
        alone = json.loads(_ok(_cli("ask", "Does BRAF inhibition help melanoma?", "--backend", "none", "--json",
                                    env=env)))
        assert set(alone) == set(answered) and alone["citations"] == answered["citations"]
        verified = json.loads(_ok(_cli("index", "verify", "--json", env=env)))
        with Catalog(settings.resolved_catalog_url) as catalog:
            active = catalog.stats()["total"]["active"]
        assert verified["ok"] and verified["records_checked"] == active > first["records_indexed"]


def _synced(settings: Settings) -> bool:
    """The index's cursor has reached the catalog's last change (the scheduled step has run)."""
    from ingest.catalog import Catalog

    state = next((settings.data_dir / "index-state").glob("*.json"), None)
    if state is None:
        return False
    with Catalog(settings.resolved_catalog_url) as catalog:
        return int(json.loads(state.read_text()).get("last_seq", -1)) >= catalog.max_change_seq()
