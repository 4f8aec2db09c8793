"""What a person reads from the CLI on a fresh install (issue 16, "The CLI and README for people"): an empty
catalog says to run ingest first, bad values are usage errors, search and extract text is readable (year,
journal, design, level, a link; units and arm names), grade and extract run without a pulled model and say
so once, short flags work, and help examples keep their lines and indents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from index.search import RecordHit
from oncolit.cli.index_cmd import hit_text
from tests.helpers import run_cli

NEJM_XML = Path("pubmed") / "real" / "biomcp" / "efetch_citation_22663011.xml"
NO_MODELS = {"ONCOLIT_FINDINGS__MODELS": "none"}  # the rules alone: fast, and what a fresh install falls back to


def _one_error_line(proc, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stderr.strip()


@pytest.mark.parametrize("args", [("search", "melanoma"), ("search", "melanoma", "-j", "-n", "3"),
                                  ("search", "melanoma", "--mode", "sparse"), ("grade", "pubmed:22663011"),
                                  ("extract", "pubmed:22663011", "-j"), ("ask", "does trametinib work?")])
def test_search_on_an_empty_catalog_says_to_run_ingest_first(args: tuple[str, ...]) -> None:
    proc = run_cli(*args, check=False)
    line = _one_error_line(proc, 1)
    assert line.startswith("error: the catalog is empty: run `oncolit ingest pubmed --query"), line
    assert "oncolit demo" in line and proc.stdout == ""


def test_search_on_a_created_but_empty_catalog_says_so_too() -> None:
    assert "the catalog is empty" in run_cli("records", "stats").stdout  # creates the catalog file
    line = _one_error_line(run_cli("search", "melanoma", "--mode", "sparse", check=False), 1)
    assert "the catalog is empty: run `oncolit ingest" in line


@pytest.mark.parametrize("args, message", [
    (("search", "melanoma", "--type", "paper"), "--type is article or trial"),
    (("search", "melanoma", "-n", "0"), "error: --limit must be 1 or more, not 0"),
    (("search", "melanoma", "--mode", "fuzzy"), "--mode is hybrid, dense or sparse"),
])
def test_bad_search_values_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "no matching records" not in proc.stdout + proc.stderr


def test_short_json_flag_and_version() -> None:
    stats = json.loads(run_cli("records", "stats", "-j").stdout)
    assert stats["total"]["records"] == 0
    assert re.fullmatch(r"oncolit \S+\n", run_cli("--version").stdout)


def test_a_search_hit_reads_as_year_journal_design_level_and_link_without_the_raw_score() -> None:
    payload = {"published": "2012-07-12", "journal": "The New England journal of medicine", "design": "rct",
               "evidence_level": "1b", "record_type": "article"}
    hit = RecordHit("pubmed:22663011", 0.0327868852, 1, "Median progression-free survival was 4.8 months",
                    "Improved survival with MEK inhibition in BRAF-mutated melanoma.", "c1", "results", payload,
                    relevance=0.873)
    text = hit_text(hit.as_dict())
    head, facts, passage, link = text.split("\n")
    assert head == " 1. Improved survival with MEK inhibition in BRAF-mutated melanoma."
    assert facts == "    2012 · The New England journal of medicine · rct · level 1b · relevance 0.87"
    assert link == "    pubmed:22663011  https://pubmed.ncbi.nlm.nih.gov/22663011/"
    assert "0.0327" not in text and "score" not in text, "the fusion score's scale means nothing to a reader"
    ungraded = hit_text(RecordHit("ctgov:NCT02576665", 0.5, 2, "p", "A trial", "c", None,
                                  {"trial_status": "RECRUITING", "phases": ["PHASE3"]}).as_dict())
    assert "not graded · RECRUITING · PHASE3" in ungraded and "https://clinicaltrials.gov/study/NCT02576665" in ungraded
    untitled = hit_text(RecordHit("pubmed:1", 0.5, 3, "Tumour cells evade apoptosis.", "[Not Available].", "c",
                                  None, {}).as_dict())
    assert untitled.split("\n")[0] == " 3. (no title)" and "Tumour cells evade apoptosis." in untitled


def test_extract_and_grade_run_without_a_pulled_model_and_say_so_once(shared_data: Path) -> None:
    run_cli("ingest", "pubmed-files", str(shared_data / NEJM_XML))
    extracted = run_cli("extract", "pubmed:22663011", "22663011", env=NO_MODELS)
    assert extracted.stderr.count("is not pulled") == 1, extracted.stderr
    assert "continuing without a language model: rule-based extraction and grading" in extracted.stderr
    out = extracted.stdout
    assert "arms: trametinib vs chemotherapy" in out
    assert "progression-free survival: median 4.8 months (trametinib) vs 1.5 months (chemotherapy)" in out
    assert "overall survival: 81% (trametinib) vs 67% (chemotherapy)" in out
    assert "HR 0.45 (95% CI 0.33-0.63) p<0.001" in out
    graded = run_cli("grade", "pubmed:22663011", env=NO_MODELS)
    assert graded.stderr.count("is not pulled") == 1, graded.stderr
    assert graded.stdout.startswith("pubmed:22663011: randomised controlled trial, phase III: level 1b")
    missing = run_cli("grade", "pubmed:1", env=NO_MODELS, check=False)
    assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("args, lines", [
    (("search", "--help"), ["Examples:", "  oncolit search \"adjuvant pembrolizumab melanoma\" --type article",
                            "  oncolit search \"EGFR exon 19 deletion osimertinib\" --type trial"]),
    (("curate", "export", "--help"), ["Examples:", "  oncolit curate export --format ris --out melanoma.ris",
                                      "  oncolit curate export --format nbib --out approved.nbib",
                                      "  oncolit curate export --format bibtex --out approved.bib"]),
    (("records", "show", "--help"), ["Examples:", "  oncolit records show pubmed:22663011 --json",
                                     "  oncolit records show NCT02576665"]),
])
def test_help_examples_keep_their_lines_and_indents(args: tuple[str, ...], lines: list[str]) -> None:
    out = run_cli(*args, env={"COLUMNS": "200", "TERM": "dumb"}).stdout
    shown = [line[1:].rstrip() for line in out.splitlines()]  # rich pads the help text by one column
    start = shown.index("Examples:")
    for offset, expected in enumerate(lines):
        assert shown[start + offset].startswith(expected), (offset, shown[start:start + len(lines)])


def test_the_demo_ends_with_next_steps_naming_its_files() -> None:
    from oncolit.cli.demo_cmd import next_steps

    lines = next_steps([{"subscriber": "demo.oncologist@example.org", "items": 9,
                         "files": {"html": "/d/demo-digests/x.html", "eml": "/d/demo-digests/x.eml"}}])
    assert lines[0] == "next:" and lines[1].endswith("/d/demo-digests/x.html") and lines[2].endswith("x.eml")
    assert any("oncolit search" in line for line in lines) and any("oncolit serve" in line for line in lines)


def test_the_demo_reports_each_step_on_stderr_when_no_terminal_shows_a_bar(capsys) -> None:  # type: ignore[no-untyped-def]
    from oncolit.cli.demo_cmd import Progress

    progress = Progress(2)
    with progress.step("ingest pubmed x"):
        pass
    with progress.step("index sync"):
        pass
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 4
    assert lines[0] == "[1/2] ingest pubmed x ..." and lines[1].startswith("[1/2] ingest pubmed x: done in ")
    assert lines[3].startswith("[2/2] index sync: done in ") and lines[3].endswith("so far)")


def test_the_demo_shows_the_passage_of_a_record_pubmed_gives_no_title() -> None:
    from oncolit.cli.demo_cmd import shown_title

    assert shown_title("Improved survival with MEK inhibition.", "x") == "Improved survival with MEK inhibition."
    shown = shown_title("[Not Available].", "BRAF  inhibitors\nare usually short-lasting " * 10)
    assert shown.startswith("(no title) BRAF inhibitors are usually") and shown.endswith("...") and len(shown) <= 90
