"""`oncolit ingest pubmed-files` and the `records` interface that outside checks rely on."""

from __future__ import annotations

import gzip
from pathlib import Path

from tests.helpers import cli_json, run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "pubmed"


def test_records_show_json_has_every_field_version_state_and_links(shared_data: Path) -> None:
    efetch = shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml"
    result = cli_json("ingest", "pubmed-files", str(efetch))
    assert result["counts"] == {"new": 1} and result["status"] == "ok"
    shown = cli_json("records", "show", "pubmed:22663011")
    assert shown["id"] == "pubmed:22663011" and shown["version"] == 1
    assert shown["state"] == "active" and shown["deleted"] is False and shown["retracted"] is False
    fields = shown["fields"]
    assert fields["pmid"] == "22663011" and "melanoma" in fields["title"].lower()
    assert [s["label"] for s in fields["abstract"]][:2] == ["BACKGROUND", "METHODS"]
    assert fields["mesh_headings"] and fields["journal"]["issn"] and fields["authors"][0]["last_name"]
    assert fields["doi"] and fields["publication_types"]
    assert isinstance(shown["trials"], list)
    stats = cli_json("records", "stats")
    assert stats["by_source"]["pubmed"] == {"records": 1, "active": 1, "deleted": 0, "retracted": 0, "versions": 1}


def test_deletions_and_retractions_show_in_state_and_stats() -> None:
    cli_json("ingest", "pubmed-files", str(FIXTURES / "retraction.xml"))
    cli_json("ingest", "pubmed-files", str(FIXTURES / "delete_citation.xml"))
    retracted = [r for r in ("pubmed:90000007", "pubmed:90000008") if cli_json("records", "show", r)["retracted"]]
    assert len(retracted) == 1
    notice = ({"pubmed:90000007", "pubmed:90000008"} - set(retracted)).pop()
    assert cli_json("records", "show", retracted[0])["retraction_notices"] == [notice]
    total = cli_json("records", "stats")["total"]
    assert total["retracted"] == 1 and total["deleted"] >= 1


def test_hostile_title_is_stored_as_literal_text() -> None:
    cli_json("ingest", "pubmed-files", str(FIXTURES / "hostile_title.xml"))
    title = cli_json("records", "show", "pubmed:90000011")["fields"]["title"]
    assert "<script>" in title  # kept as text: every renderer must escape it


def test_a_truncated_file_fails_whole_and_leaves_earlier_files_committed(shared_data: Path, tmp_path: Path) -> None:
    good = shared_data / "pubmed" / "constructed" / "hoc-0001.xml.gz"
    data = gzip.decompress((shared_data / "pubmed" / "constructed" / "hoc-0002.xml.gz").read_bytes())
    broken = tmp_path / "update-broken.xml.gz"
    broken.write_bytes(gzip.compress(data[: len(data) * 2 // 3]))
    proc = run_cli("ingest", "pubmed-files", str(good), str(broken), check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("error:") and "update-broken" in proc.stderr
    first = cli_json("ingest", "pubmed-files", str(good))
    assert set(first["counts"]) == {"unchanged"}, "the good file was committed; nothing of the broken one"
    assert cli_json("records", "stats")["total"]["records"] == sum(first["counts"].values())


def test_missing_record_is_a_one_line_error() -> None:
    proc = run_cli("records", "show", "pubmed:1", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: no record")
