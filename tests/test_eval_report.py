"""Run folders: stamped results.json, Markdown, PNGs; `compare` deltas; the CLI's compare command."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from eval import stamp
from eval.cli import app
from eval.compare import compare, render
from eval.report import RESULTS_FILE, SuiteResult, flatten, load_run, write_run
from oncolit.settings import Settings


def _result(ndcg: float) -> SuiteResult:
    return SuiteResult(
        suite="retrieval", metrics={"modes": {"dense": {"ndcg@10": ndcg, "latency": {"p50_ms": 3.0}}}, "flag": True},
        config={"limit": 2}, dataset={"path": "x", "kind": "beir"}, timings={"queries": 1.23456},
        plots={"confusion": {"toy": {"labels": ["a", "b"], "counts": [[2, 1], [0, 3]]}},
               "pr": {"toy pr": {"s": {"precision": [1.0, 0.5], "recall": [0.5, 1.0], "average_precision": 0.75}}},
               "latency": {"toy latency": {"dense": [0.01, 0.02, 0.03]}},
               "bars": {"toy bars": {"dense": ndcg}}},
        tables=[{"title": "T", "columns": ["mode", "nDCG@10"], "rows": [["dense", ndcg]]}],
        notes=["a note"], items=[{"query_id": "q1"}])


def test_write_run_stamps_and_renders(tmp_path: Path) -> None:
    dataset = tmp_path / "data"
    dataset.mkdir()
    (dataset / "corpus.jsonl").write_text('{"_id": "1"}\n')
    settings = Settings(data_dir=tmp_path / "d")
    doc = write_run(_result(0.5), tmp_path / "run", settings.redacted(), dataset)
    saved = load_run(tmp_path / "run")
    assert saved == json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert saved["git"]["commit"] and len(saved["git"]["commit"]) == 40
    assert saved["settings_hash"] == stamp.settings_hash(settings.redacted())
    assert saved["dataset"]["fingerprint"]["files"] == 1 and len(saved["dataset"]["fingerprint"]["sha256"]) == 64
    assert saved["machine"]["cpus"] >= 1 and saved["timings"]["queries"] == 1.235
    assert sorted(doc["images"]) == sorted(p.name for p in (tmp_path / "run").glob("*.png"))
    assert len(doc["images"]) == 4
    report = (tmp_path / "run" / "report.md").read_text()
    assert "# OncoLit eval: retrieval" in report and "a note" in report and "![" in report
    assert (tmp_path / "run" / "predictions.jsonl").read_text().strip() == '{"query_id": "q1"}'


def test_settings_hash_ignores_paths_only() -> None:
    a = Settings(data_dir=Path("/tmp/a")).redacted()
    b = Settings(data_dir=Path("/tmp/b")).redacted()
    c = Settings(data_dir=Path("/tmp/a"), chunking={"max_tokens": 128}).redacted()
    assert stamp.settings_hash(a) == stamp.settings_hash(b) != stamp.settings_hash(c)


def test_dataset_fingerprint_changes_with_content(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("one")
    before = stamp.dataset_fingerprint(tmp_path)["sha256"]
    (tmp_path / "f.txt").write_text("two")
    assert stamp.dataset_fingerprint(tmp_path)["sha256"] != before


def test_compare_prints_deltas_and_stamp_differences(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d").redacted()
    write_run(_result(0.5), tmp_path / "a", settings, None)
    b = _result(0.625)
    b.config = {"limit": 3}
    write_run(b, tmp_path / "b", settings, None)
    result = compare(tmp_path / "a", tmp_path / "b")
    row = next(r for r in result["deltas"] if r["metric"] == "modes.dense.ndcg@10")
    assert row["delta"] == 0.125
    assert "flag" not in {r["metric"] for r in result["deltas"]}  # booleans are not deltas
    assert "config" in result["differences"]
    text = render(result)
    assert "modes.dense.ndcg@10" in text and "+0.1250" in text
    out = CliRunner().invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert out.exit_code == 0, out.output
    assert "+0.1250" in out.output


def test_flatten_skips_lists() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "d": None}


def test_cli_runs_a_suite_and_prints_results_json(shared_data: Path, tmp_path: Path) -> None:
    from oncolit.cli.common import get_settings

    get_settings.cache_clear()  # pick up this test's isolated data dir
    out = tmp_path / "grading-run"
    result = CliRunner().invoke(app, ["grading", "--dataset", str(shared_data / "eval" / "evidence-inference"),
                                      "--limit", "6", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["suite"] == "grading" and doc["config"]["limit"] == 6
    assert doc["dataset"]["kind"] == "evidence-inference" and doc["metrics"]["classifier"]["n"] == 6
    assert (out / "results.json").exists() and (out / "report.md").exists()
    get_settings.cache_clear()
