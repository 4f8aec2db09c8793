"""Cold start (issue 16): `oncolit --help` imports no command module, a command imports only its own group,
a sparse first stage imports no torch, and with the ONNX exports (`oncolit index export-onnx`) a default search
(hybrid, reranked) imports none either. Each command runs in a fresh process that reports `sys.modules` when it
exits; nothing here is timed (benchmarks/cold_start.py is)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oncolit import __version__
from oncolit.cli.lazy import build_command, load_target
from oncolit.cli.main import COMMANDS, app
from tests.helpers import run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# What a start must not pay for unless the command needs it.
HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "qdrant_edge", "qdrant_client",
         "sqlalchemy", "numpy", "fastapi", "synthesis", "eval")
NO_TORCH = ("torch", "sentence_transformers", "transformers")

# Run `oncolit ARGS` (the real entry point) and write the names in sys.modules to OUT when the process exits.
PROBE = ("import atexit, json, sys\n"
         "out = sys.argv[1]\n"
         "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
         "sys.argv = ['oncolit', *sys.argv[2:]]\n"
         "from oncolit.cli.main import main\n"
         "main()\n")


def imported(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """(top-level and dotted module names imported by `oncolit ARGS`, its stdout); the command must succeed."""
    out = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(out.read_text())), proc.stdout


def heavy(modules: set[str], names: tuple[str, ...] = HEAVY) -> list[str]:
    return [name for name in names if name in modules]


def command_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith("oncolit.cli.") and m.endswith("_cmd"))


def test_help_lists_every_command_and_imports_none(tmp_path: Path) -> None:
    modules, out = imported(tmp_path, "--help")
    assert command_modules(modules) == [] and heavy(modules) == [], (command_modules(modules), heavy(modules))
    assert "pydantic_settings" not in modules, "listing commands needs no settings"
    for name in COMMANDS:
        assert f" {name} " in out, name


@pytest.mark.parametrize("group", ["records", "index", "ingest"])
def test_a_group_help_imports_that_group_only(tmp_path: Path, group: str) -> None:
    modules, out = imported(tmp_path, group, "--help")
    module = str(COMMANDS[group][0]).split(":")[0]
    assert command_modules(modules) == [module] and heavy(modules) == [], (command_modules(modules), heavy(modules))
    assert "Commands" in out


def test_version() -> None:
    assert run_cli("--version").stdout.strip() == f"oncolit {__version__}"


def test_each_listed_line_is_the_first_paragraph_of_the_commands_own_help() -> None:
    """The table in oncolit/cli/main.py repeats each command's help line so `--help` need not import it."""
    for name, (target, line) in COMMANDS.items():
        command = build_command(name, load_target(target))
        assert inspect.cleandoc(command.help or "").split("\n\n")[0] == line, name
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"], prog_name="oncolit")
        assert result.exit_code == 0 and f"oncolit {name}" in result.output, (name, result.output)


def test_a_mistyped_command_still_gets_a_suggestion() -> None:
    proc = run_cli("serach", "melanoma", check=False)
    assert proc.returncode == 2 and "No such command 'serach'. Did you mean 'search', 'searches'" in proc.stderr, proc.stderr


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data dir with two PubMed articles and one CT.gov study, ingested and indexed."""
    env = {"ONCOLIT_DATA_DIR": str(tmp_path_factory.mktemp("cold-start-data")), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    run_cli("ingest", "pubmed-files", str(FIXTURES / "pubmed" / "structured_abstract.xml"),
            str(FIXTURES / "pubmed" / "unicode.xml"), env=env)
    run_cli("ingest", "ctgov-files", str(FIXTURES / "ctgov" / "NCT90000001_2026-02-10.json"), env=env)
    run_cli("index", "sync", env=env)
    return env


def test_sparse_search_records_show_and_verify_import_no_torch(synced: dict[str, str], tmp_path: Path) -> None:
    modules, out = imported(tmp_path, "search", "lung cancer chemotherapy", "--mode", "sparse", "--no-rerank", "--json",
                            env=synced)
    assert json.loads(out)["results"], "the fixture is searchable"
    assert heavy(modules, (*NO_TORCH, "onnxruntime")) == []
    assert command_modules(modules) == ["oncolit.cli.index_cmd"]
    modules, out = imported(tmp_path, "records", "show", "NCT90000001", "--json", env=synced)
    assert json.loads(out)["id"] == "ctgov:NCT90000001"
    assert heavy(modules, (*NO_TORCH, "onnxruntime", "qdrant_edge", "numpy")) == []
    modules, _ = imported(tmp_path, "index", "verify", "--json", env=synced)
    assert heavy(modules, (*NO_TORCH, "onnxruntime")) == []


def test_a_search_runs_on_the_onnx_exports_and_finds_the_same(synced: dict[str, str], tmp_path: Path) -> None:
    """A hybrid search (the query embedded) reranked by the shipped cross-encoder (`--rerank`)."""
    pytest.importorskip("onnxruntime", reason="optional faster CPU path")
    pytest.importorskip("onnx", reason="needed to export the graph")
    query = ("search", "chemotherapy for advanced lung cancer", "--rerank", "--json", "--limit", "3")
    modules, out = imported(tmp_path, *query, env=synced)
    assert "torch" in modules and "onnxruntime" not in modules, "no export yet: torch embeds and reranks"
    with_torch = json.loads(out)["results"]
    exported = json.loads(run_cli("index", "export-onnx", "--json", env=synced).stdout)
    assert exported["onnx"].endswith(".onnx") and exported["reranker"].endswith(".onnx")
    cache = Path(synced["ONCOLIT_DATA_DIR"]) / "cache" / "embeddings" / "embeddings.sqlite"
    cache.unlink()  # derived: else the query's vector would come from the cache, not from ONNX Runtime
    modules, out = imported(tmp_path, *query, env=synced)
    assert heavy(modules, NO_TORCH) == [] and "onnxruntime" in modules
    with_onnx = json.loads(out)["results"]
    assert [r["record_id"] for r in with_onnx] == [r["record_id"] for r in with_torch]
    assert all(abs(a["score"] - b["score"]) < 1e-4 for a, b in zip(with_onnx, with_torch))
    assert all(a["relevance"] is not None and abs(a["relevance"] - b["relevance"]) < 1e-3
               for a, b in zip(with_onnx, with_torch)), "reranked by the same model"
