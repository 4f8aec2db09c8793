"""Exit codes tell the truth (issue 18, item 3): partial work exits 3 and says what was committed.

Each test is a case the probe found reported as success (exit 0, or `"status": "ok"`): a chain
whose index sync and digests failed, a two-file run that committed one file, an empty folder, a
run row left `running` by a killed process. All through the real CLI in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ingest import replay_faults as faults
from ingest.catalog import Catalog
from ingest.replay import ReplayServer
from tests.helpers import ONCOLIT, cli_json, pubmed_env, run_cli

REPLAY_FIXTURE = Path(__file__).parent / "fixtures" / "replay" / "update-0001.xml"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_run_once_whose_sync_and_digests_fail_is_partial_not_ok(tmp_path: Path, isolated_env: Path) -> None:
    folder = tmp_path / "pubmed"
    folder.mkdir()
    (folder / "update-0001.xml").write_bytes(REPLAY_FIXTURE.read_bytes())
    with ReplayServer(pubmed_dir=folder) as server:
        env = pubmed_env(server.eutils_url,
                         ONCOLIT_SCHEDULE__FOLLOW_ON='["index_sync", "digests"]',
                         ONCOLIT_INDEX__BACKEND="qdrant",  # no ONCOLIT_INDEX__QDRANT_URL: the sync cannot open it
                         ONCOLIT_SMTP__HOST="127.0.0.1", ONCOLIT_SMTP__PORT=str(_closed_port()),
                         ONCOLIT_SMTP__STARTTLS="false", ONCOLIT_SMTP__TIMEOUT="2")
        run_cli("searches", "add", "small", "--query", "all[sb]", "--since", "2026-11-01", env=env)
        run_cli("subscribers", "add", "ana@example.org", "--search", "small", "--send-hour", "0", env=env)
        proc = run_cli("schedule", "run-once", "small", "--json", env=env, check=False)
    assert proc.returncode == 3, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "partial" and result["failed_steps"] == ["index_sync", "digests"], result["digests"]
    assert result["ingest"]["status"] == "ok" and result["ingest"]["counts"]["new"] >= 1
    assert result["index_sync"]["status"] == "failed" and "QDRANT_URL" in result["index_sync"]["error"]
    assert result["digests"]["status"] == "failed"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: small: the ingest committed new ") and "index_sync" in last and "digests" in last


def test_two_file_run_with_one_bad_file_commits_the_other_and_names_both(shared_data: Path, tmp_path: Path) -> None:
    good = shared_data / "pubmed" / "constructed" / "hoc-0001.xml.gz"
    data = gzip.decompress((shared_data / "pubmed" / "constructed" / "hoc-0002.xml.gz").read_bytes())
    broken = tmp_path / "update-broken.xml.gz"
    broken.write_bytes(gzip.compress(data[: len(data) * 2 // 3]))
    # The bad file first: the good one after it must still go in.
    proc = run_cli("ingest", "pubmed-files", str(broken), str(good), "--json", check=False)
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "partial"
    assert [(f["path"], f["status"]) for f in summary["file_results"]] == [(str(broken), "failed"), (str(good), "ok")]
    assert "not well-formed" in summary["file_results"][0]["error"]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "hoc-0001.xml.gz" in last and "update-broken.xml.gz" in last
    assert f"new {summary['counts']['new']}" in last
    assert cli_json("records", "stats")["total"]["records"] == summary["counts"]["new"] == summary["file_results"][1]["records"]
    with Catalog(f"sqlite:///{Path(os.environ['ONCOLIT_DATA_DIR']) / 'catalog.sqlite'}") as catalog:
        run = catalog.runs(1)[0]
    assert run["status"] == "partial" and "update-broken" in run["error"]
    # Nothing ingestible at all is a plain failure (exit 1), naming the file.
    alone = run_cli("ingest", "pubmed-files", str(broken), check=False)
    assert alone.returncode == 1 and alone.stderr.startswith("error: no file could be ingested") and "update-broken" in alone.stderr


def test_empty_folder_is_an_error_not_a_silent_success(tmp_path: Path) -> None:
    empty = tmp_path / "downloads"
    empty.mkdir()
    (empty / "README.txt").write_text("not a PubMed file")
    for command in ("pubmed-files", "ctgov-files"):
        proc = run_cli("ingest", command, str(empty), check=False)
        assert proc.returncode == 1 and proc.stderr.startswith("error: ") and "nothing to ingest" in proc.stderr
        assert proc.stderr.count("\n") == 1
    assert cli_json("records", "stats")["total"]["records"] == 0


def test_partial_window_exits_3_and_says_what_is_committed(shared_data: Path) -> None:
    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as server:
        server.faults.always("efetch", faults.drop_records(1))
        env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="1000")
        run_cli("searches", "add", "everything", "--query", "all[sb]", "--since", "2026-11-02", env=env)
        proc = run_cli("ingest", "pubmed", "--search", "everything", "--until", "2026-11-27", env=env, check=False)
    assert proc.returncode == 3, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("partial: pubmed everything: committed new ") and "never arrived" in last
    assert "watermark stays" in last


def test_killed_run_is_marked_interrupted_by_the_next_run(shared_data: Path, isolated_env: Path) -> None:
    with ReplayServer(pubmed_dir=shared_data / "pubmed" / "constructed") as server:
        start = server.faults.count("efetch")
        server.faults.on_request("efetch", start + 2, faults.delay(30))
        env = pubmed_env(server.eutils_url, ONCOLIT_PUBMED__BATCH_SIZE="100", ONCOLIT_PUBMED__RETRY__TIMEOUT="60")
        run_cli("searches", "add", "everything", "--query", "all[sb]", "--since", "2026-11-02", env=env)
        proc = subprocess.Popen([*ONCOLIT, "ingest", "pubmed", "--search", "everything", "--until", "2026-11-27"],
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while server.faults.count("efetch") < start + 2:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        catalog_url = f"sqlite:///{isolated_env / 'catalog.sqlite'}"
        with Catalog(catalog_url) as catalog:
            [killed] = catalog.runs(1)
            assert killed["status"] == "running"  # what it looked like for ever before
        server.faults.clear()
        run_cli("ingest", "pubmed", "--search", "everything", "--until", "2026-11-27", env=env)
    with Catalog(catalog_url) as catalog:
        rerun, before = catalog.runs(2)
    assert before["id"] == killed["id"] and before["status"] == "interrupted" and "killed" in before["error"]
    assert before["finished_at"] is not None and rerun["status"] == "ok"


def test_a_running_row_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    """Only rows whose process is gone are closed: a run still going (here: this process, and a row
    of another host sharing the catalog) keeps its `running`."""
    with Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}") as catalog:
        mine = catalog.start_run("pubmed", "query")
        with catalog.transaction() as conn:
            from ingest.catalog import schema as t
            conn.execute(t.ingest_runs.insert().values(
                source="pubmed", mode="query", started_at=dt.datetime.now(dt.UTC), status="running", counts={},
                owner="another-host.example:1"))
        catalog.start_run("pubmed", "query")
        statuses = {r["id"]: r["status"] for r in catalog.runs(10)}
    assert statuses[mine] == "running" and list(statuses.values()).count("running") == 3
