"""`oncolit extract` and `oncolit grade` on a small real catalog: the JSON interface for outside checks,
`--backend none` without any model, the real small model through `--model`, batches that resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.errors import RecordNotFound
from ingest.pubmed_xml import parse_pubmed_xml
from oncolit.cli import synthesis_cmd
from oncolit.cli.common import get_settings
from synthesis.findings import Findings
from synthesis.grading import Grade
from synthesis.llm.registry import SMOLLM2, pull
from synthesis.readers import record_text
from synthesis.verify import find_quote

PUBMED = ["pubmed/real/biomcp/efetch_citation_22663011.xml", "pubmed/real/biopython/entrez/pubmed4.xml",
          "pubmed/real/biopython/entrez/pubmed1.xml"]
TRIALS = ["ctgov/real/aact/v2_json/NCT02552212.json", "ctgov/real/biomcp/get_nct02576665_20260811.json"]
ALL_IDS = 6  # 22663011, 27797938, 12091962, 9997, and two trials


@pytest.fixture
def app(isolated_env: Path, shared_data: Path) -> Iterator[typer.Typer]:
    """The two commands as main.py registers them, over a catalog of real records in the test's data dir."""
    get_settings.cache_clear()
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        for name in PUBMED:
            catalog.ingest_batch(parse_pubmed_xml((shared_data / name).read_bytes()))
        for name in TRIALS:
            catalog.ingest_batch(list(iter_ctgov_path(shared_data / name)))
    cli = typer.Typer()
    cli.command("extract")(synthesis_cmd.extract)
    cli.command("grade")(synthesis_cmd.grade)
    yield cli
    get_settings.cache_clear()


def run(app: typer.Typer, *args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def run_json(app: typer.Typer, *args: str) -> Any:
    return json.loads(run(app, *args, "--json").stdout)


def test_extract_json_prints_the_validated_findings_object(app: typer.Typer, shared_data: Path) -> None:
    data = run_json(app, "extract", "pubmed:22663011", "--backend", "none")
    findings = Findings.model_validate(data)  # the published schema, as an outside checker would
    assert findings.record_id == "pubmed:22663011" and findings.version == 1
    # --backend none: no language model; the findings models (shipped) still run, and say so
    assert findings.extraction.model_dump() == {"backend": "none", "model": "none+minilm-reader+minilm-direction",
                                                "prompt_id": "findings-rules/v1+findings-models/v1"}
    assert data["dropped"] == []
    hr = next(o for o in data["outcomes"] if o["measure"] == "HR" and o["value"] == 0.54)
    assert (hr["ci_low"], hr["ci_high"], hr["kind"]) == (0.32, 0.92, "OS")
    text = record_text(parse_pubmed_xml((shared_data / PUBMED[0]).read_bytes())[0].record)
    assert all(text[q["start"]:q["end"]] == q["text"] and find_quote(q["text"], text) for q in data["quotes"])


def test_grade_json_prints_design_level_and_reasons(app: typer.Typer) -> None:
    data = run_json(app, "grade", "22663011", "--backend", "none")
    grade = Grade.model_validate({k: v for k, v in data.items() if k != "extraction"})
    assert (grade.design, grade.phase, grade.level, grade.excluded) == ("rct", "III", "1b", False)
    assert {"publication_type", "quote", "field"} <= {r.evidence_kind for r in grade.reasons}
    review = run_json(app, "grade", "pubmed:12091962", "--backend", "none")
    assert (review["design"], review["level"]) == ("narrative_review", "5")
    trial = run_json(app, "grade", "NCT02552212", "--backend", "none")
    assert (trial["design"], trial["level"], trial["reasons"][0]["evidence_kind"]) == ("rct", "1b", "registry")


def test_grade_text_explains(app: typer.Typer) -> None:
    out = run(app, "grade", "pubmed:27797938", "--backend", "none").stdout
    assert "case-control study: level 3b" in out and "publication_type: Observational Study" in out


def test_backend_from_settings(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLIT_LLM__BACKEND", "none")
    get_settings.cache_clear()
    assert run_json(app, "extract", "pubmed:27797938")["extraction"]["backend"] == "none"


def test_several_ids_give_a_list_and_trials_come_from_the_registry(app: typer.Typer) -> None:
    data = run_json(app, "extract", "pubmed:22663011", "NCT02576665", "--backend", "none")
    assert [d["record_id"] for d in data] == ["pubmed:22663011", "ctgov:NCT02576665"]
    assert data[1]["extraction"]["prompt_id"] == "trial-registry/v1" and data[1]["status"] == "TERMINATED"


def test_batch_run_resumes_and_skips_cached_work(app: typer.Typer) -> None:
    first = run_json(app, "extract", "--backend", "none", "--limit", "2", "--since", "2000-01-01")
    assert (first["records"], first["extracted"]) == (2, 2)
    rest = run_json(app, "extract", "--backend", "none")
    assert (rest["records"], rest["extracted"]) == (ALL_IDS - 2, ALL_IDS - 2)
    assert run_json(app, "extract", "--backend", "none")["records"] == 0
    assert run_json(app, "extract", "--backend", "none", "--since", "2999-01-01", "--force")["records"] == 0
    forced = run_json(app, "extract", "--backend", "none", "--force", "--batch-size", "4")
    assert (forced["records"], forced["extracted"], forced["failed"]) == (ALL_IDS, ALL_IDS, 0)
    text = run(app, "extract", "pubmed:22663011", "--backend", "none").stdout
    assert "cached" in text and "level 1b" in text


def test_unknown_record_is_an_error(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["grade", "pubmed:1", "--backend", "none"])
    assert result.exit_code != 0 and isinstance(result.exception, RecordNotFound)


def test_extract_with_the_real_small_model(app: typer.Typer, tmp_path_factory: pytest.TempPathFactory,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path_factory.mktemp("cli-models")
    gguf = pull(SMOLLM2.name, models).path
    monkeypatch.setenv("ONCOLIT_LLM__N_CTX", "2048")
    get_settings.cache_clear()
    args = ("extract", "pubmed:22663011", "--backend", "llamacpp", "--model", str(gguf), "--max-tokens", "96")
    data = run_json(app, *args)
    findings = Findings.model_validate(data)
    assert findings.extraction.model_dump() == {"backend": "llamacpp",
                                                "model": "llamacpp:smollm2-135m+minilm-reader+minilm-direction",
                                                "prompt_id": "extract-findings/v1+findings-models/v1"}
    assert all(d["path"] and d["reason"] for d in data["dropped"])
    assert "cached" in run(app, *args).stdout  # second run: from the catalog
