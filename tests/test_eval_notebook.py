"""notebooks/eval_report.ipynb runs top to bottom on a real run folder (executed with nbclient), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from eval.report import write_run
from eval.suites import grading
from eval.suites.common import RunOptions
from oncolit.settings import Settings

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "eval_report.ipynb"


def test_notebook_executes_on_a_run_folder(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    options = RunOptions(dataset=shared_data / "eval" / "evidence-inference", out=tmp_path / "run",
                         settings=Settings(data_dir=tmp_path / "home"), limit=12)
    doc = write_run(grading.run(options), options.out, options.settings.redacted(), options.dataset)
    monkeypatch.setenv("ONCOLIT_EVAL_RUN", str(options.out))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "commit it without outputs"
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "grading" in text and doc["settings_hash"] in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(doc["images"])  # every plot redrawn from results.json
