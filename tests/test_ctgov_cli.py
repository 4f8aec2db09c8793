"""ClinicalTrials.gov through the CLI: files, the API via replay, versions with change lists, links."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.replay import ReplayServer
from tests.helpers import cli_json, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "ctgov"

ARTICLE_CITING_TRIAL = b"""<?xml version="1.0"?>
<PubmedArticleSet><PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM">
<PMID Version="1">22222222</PMID><Article PubModel="Print"><Journal><Title>Fictional J Oncol</Title></Journal>
<ArticleTitle>Fictional Drug X plus chemotherapy in NSCLC</ArticleTitle>
<Abstract><AbstractText>Registered at ClinicalTrials.gov (NCT90000001).</AbstractText></Abstract>
</Article></MedlineCitation><PubmedData><PublicationStatus>ppublish</PublicationStatus></PubmedData>
</PubmedArticle></PubmedArticleSet>
"""


def test_two_update_dates_make_two_versions_with_the_status_change(tmp_path: Path) -> None:
    run_cli("ingest", "ctgov-files", str(FIXTURES / "NCT90000001_2024-03-01.json"))
    again = cli_json("ingest", "ctgov-files", str(FIXTURES / "NCT90000001_2024-03-01.json"))
    assert again["counts"] == {"unchanged": 1}
    later = cli_json("ingest", "ctgov-files", str(FIXTURES / "NCT90000001_2026-02-10.json"))
    assert later["counts"] == {"revised": 1}
    shown = cli_json("records", "show", "ctgov:NCT90000001")
    assert shown["version"] == 2 and shown["kind"] == "trial"
    changes = {c["field"]: c for c in shown["versions"][1]["changes"]}
    assert changes["overall_status"]["before"] == "RECRUITING"
    assert changes["overall_status"]["after"] == "COMPLETED"
    # An older file arriving after the newer one does not roll the record back.
    stale = cli_json("ingest", "ctgov-files", str(FIXTURES / "NCT90000001_2024-03-01.json"))
    assert stale["counts"] == {"stale": 1}
    stats = cli_json("records", "stats")
    assert stats["by_source"]["ctgov"] == {"records": 1, "active": 1, "deleted": 0, "retracted": 0, "versions": 2}


def test_publication_trial_links_both_ways(tmp_path: Path) -> None:
    article = tmp_path / "article.xml"
    article.write_bytes(ARTICLE_CITING_TRIAL)
    run_cli("ingest", "pubmed-files", str(article))
    run_cli("ingest", "ctgov-files", str(FIXTURES / "NCT90000001_2026-02-10.json"))
    assert cli_json("records", "show", "pubmed:22222222")["trials"] == ["ctgov:NCT90000001"]
    trial = cli_json("records", "show", "NCT90000001")
    assert trial["publications"] == ["pubmed:11111111", "pubmed:22222222", "pubmed:33333333"]
    kinds = {(link["src"], link["dst"], link["kind"], link["detail"]) for link in trial["links"]}
    assert ("ctgov:NCT90000001", "pubmed:22222222", "references", "RESULT") in kinds
    assert ("pubmed:22222222", "ctgov:NCT90000001", "reports_trial", None) in kinds


def test_real_recorded_studies_ingest_from_a_folder(shared_data: Path) -> None:
    result = cli_json("ingest", "ctgov-files", str(shared_data / "ctgov" / "real" / "aact" / "v2_json"))
    assert result["status"] == "ok"
    # 13 files; one is an older copy of another study (same content): 12 distinct records.
    assert result["counts"]["new"] == 12
    shown = cli_json("records", "show", "ctgov:NCT00763412")
    assert shown["fields"]["has_results"] is True and shown["version"] == 1


def test_api_ingest_through_replay_with_pagination_and_watermark(shared_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ctgov"
    shutil.copytree(shared_data / "ctgov" / "real" / "aact" / "v2_json", folder)
    env_base = {"ONCOLIT_CTGOV__PAGE_SIZE": "3", "ONCOLIT_CTGOV__REQUESTS_PER_SECOND": "100",
                "ONCOLIT_CTGOV__RETRY__BACKOFF_BASE": "0.05"}
    with ReplayServer(ctgov_dir=folder) as server:
        env = {**env_base, "ONCOLIT_CTGOV__BASE_URL": server.ctgov_url}
        run_cli("searches", "add", "all-trials", "--source", "ctgov", "--query", "", "--since", "2015-01-01", env=env)
        [summary] = cli_json("ingest", "ctgov", "--search", "all-trials", "--until", "2026-11-27", env=env)
        assert summary["status"] == "ok" and summary["batches"] >= 3
        assert summary["watermark_after"] == "2026-11-27"
        # Only studies last updated inside the window come back: 13 files, two without a date, and
        # one file holding an older copy of another study (the server keeps one per NCT id).
        assert summary["counts"] == {"new": 10}
        [narrow] = cli_json("ingest", "ctgov", "--query", "dermatitis", "--since", "2020-01-01",
                            "--until", "2020-12-31", env=env)
        assert narrow["counts"] == {"unchanged": 1}


@pytest.mark.parametrize("bad", ["[1, 2]", "{\"studies\": [{\"protocolSection\": {}}]}", "{not json"])
def test_bad_files_fail_with_one_line_and_write_nothing(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(bad)
    proc = run_cli("ingest", "ctgov-files", str(path), check=False)
    assert proc.returncode != 0 and proc.stderr.startswith("error:")
    assert cli_json("records", "stats")["total"]["records"] == 0


def test_partial_captures_of_one_study_merge_instead_of_flip_flopping(shared_data: Path) -> None:
    """The recorded captures asked for different `fields=`; the same study appears in several."""
    biomcp = shared_data / "ctgov" / "real" / "biomcp"
    files = [str(p) for p in sorted(biomcp.glob("*.json")) if p.name.startswith(("get_", "search_"))]
    first = cli_json("ingest", "ctgov-files", *files)
    assert first["status"] == "ok" and first["counts"].get("new", 0) >= 15
    again = cli_json("ingest", "ctgov-files", *files)
    assert set(again["counts"]) == {"unchanged"}, again["counts"]
