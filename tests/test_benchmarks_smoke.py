"""Every benchmark runs end to end on a tiny input and writes its result document, so the commands in
benchmarks/README.md cannot rot. No timing is asserted: the numbers only mean something from a full run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(module: str, out: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args, "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["git_commit"] and result["cpus"] and "load_avg_start" in result
    return result


def test_ingest_throughput(shared_data: Path, tmp_path: Path) -> None:
    result = run_benchmark("ingest_throughput", tmp_path / "r.json", "--data", str(shared_data), "--repeat", "1")
    assert result["records"] > 1000 and result["cost_ratio"] > 0


def test_embedder_throughput(shared_data: Path, tmp_path: Path) -> None:
    result = run_benchmark("embedder_throughput", tmp_path / "r.json", "--data", str(shared_data), "--texts", "16",
                           "--rounds", "1", "--variants", "torch-b32")
    assert result["results"]


def test_index_throughput(shared_data: Path, tmp_path: Path) -> None:
    result = run_benchmark("index_throughput", tmp_path / "r.json", "--data", str(shared_data), "--limit", "20",
                           "--repeat", "1")
    assert result["settings"]["records"] == 20 and result["points"] > 20


@pytest.mark.timeout(600)
def test_query_latency(tmp_path: Path) -> None:
    result = run_benchmark("query_latency", tmp_path / "r.json", "--sizes", "2000", "--queries", "5",
                           "--local-queries", "2", "--workdir", str(tmp_path / "stores"))
    assert {run["store"] for run in result["runs"]} == {"edge", "local"}


def test_findings_speed(shared_data: Path, tmp_path: Path) -> None:
    result = run_benchmark("findings_speed", tmp_path / "r.json", "--dataset",
                           str(shared_data / "eval" / "evidence-inference"), "--n", "3", "--threads", "1")
    assert result["abstracts"] == 3 and result["rules"]["n"] == 3 and result["ratio_models_to_rules"] > 0


def test_rerank_latency(shared_data: Path, tmp_path: Path) -> None:
    result = run_benchmark("rerank_latency", tmp_path / "r.json", "--data", str(shared_data), "--queries", "2",
                           "--depths", "5", "--threads", "1")
    assert {r["what"] for r in result["results"]} == {"rerank@5", "embed_query"}


def test_cold_start(tmp_path: Path) -> None:
    result = run_benchmark("cold_start", tmp_path / "r.json", "--runs", "1", "--commands",
                           "help,show,sparse-no-rerank", "--workdir", str(tmp_path / "work"))
    assert set(result["results"]) == {"pass", "help", "show", "sparse-no-rerank"}
    assert result["results"]["sparse-no-rerank"]["ratio_to_python"] > 0
    assert result["results"]["help"]["imports"]["sqlalchemy"] is False
    assert result["results"]["sparse-no-rerank"]["imports"]["torch"] is False


@pytest.mark.slow  # ~40 s: a fresh index (the embedder loads) and a real server process
def test_serve_burst(shared_data: Path, tmp_path: Path) -> None:
    result = run_benchmark("serve_burst", tmp_path / "r.json", "--data", str(shared_data), "--records", "20",
                           "--requests", "8", "--concurrency", "4", "--baseline", "2", "--workdir", str(tmp_path))
    assert result["burst"]["statuses"] == {"200": 8} and result["burst"]["by_kind"]["ask"]["n"] >= 1
    assert result["baseline"]["n"] == 2 and result["ratios"]["throughput_vs_baseline"] > 0
    assert result["healthz_during_burst"]["n"] >= 1 and result["healthz_during_burst"]["failures"] == 0
    assert result["server"]["workers"] >= 1 and result["server"]["points"] > 0


def test_catalog_backends(shared_data: Path, tmp_path: Path) -> None:
    """Starts its own throwaway PostgreSQL (tests/pg.py), like the full run."""
    from tests import pg

    if pg.OPT_OUT:
        pytest.skip("ONCOLIT_TEST_PG=skip: PostgreSQL tests opted out")
    result = run_benchmark("catalog_backends", tmp_path / "r.json", "--data", str(shared_data), "--n", "200",
                           "--repeat", "1")
    assert result["records"] == 200 and set(result["results"]) == {"sqlite", "postgresql"}
    assert result["ratio_pg_to_sqlite"]["ingest_s"] > 0 and result["results"]["postgresql"]["digest_first_s"] > 0


@pytest.mark.slow  # builds an index and starts a real `oncolit serve`
def test_served_cli(tmp_path: Path) -> None:
    result = run_benchmark("served_cli", tmp_path / "r.json", "--runs", "1")
    assert set(result["results"]) == {"pass", "sparse", "sparse@server", "hybrid", "hybrid@server"}
    assert result["serve_to_first_search_s"] > 0 and result["owner_file_left_after_exit"] is False
