"""`oncolit curate …` acting as a named local user (--as, $ONCOLIT_USER)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rispy
from typer.testing import CliRunner

from ingest.catalog import Catalog
from ingest.curation import Curation, CurationError, PermissionDenied
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.records import Article
from ingest.source import ParsedItem
from oncolit.cli import curate_cmd
from oncolit.cli.common import get_settings

NEJM = "pubmed:22663011"


@pytest.fixture
def cli(isolated_env: Path, shared_data: Path):
    get_settings.cache_clear()
    settings = get_settings()
    settings.ensure_data_dir()
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items.append(ParsedItem(Article(pmid="1002", title="Survie du mélanome", languages=["fre"]), b"<x/>", "pubmed-xml"))
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
    runner = CliRunner()

    def run(*args: str, user: str | None = "lib", ok: bool = True):
        result = runner.invoke(curate_cmd.app, list(args), env={"ONCOLIT_USER": user} if user else {})
        if ok and result.exit_code != 0:
            raise AssertionError(f"{args}: {result.output}\n{result.exception!r}")
        return result

    yield run, settings
    get_settings.cache_clear()


def test_cli_acts_as_the_named_user_and_everything_is_audited(cli, tmp_path: Path) -> None:
    run, settings = cli
    run("users", "add", "ada", "--role", "admin", "--as", "ada")
    run("users", "add", "lib", "--role", "librarian", "--as", "ada")
    run("users", "add", "rita", "--role", "reader", user="ada")
    denied = run("approve", NEJM, user="rita", ok=False)
    assert isinstance(denied.exception, PermissionDenied)
    run("rules", "add", "exclude", "language", "fre", "--reason", "English only")
    queue = json.loads(run("queue", "--json").stdout)
    assert [i["record_id"] for i in queue["items"]] == [NEJM] and queue["total"] == 1
    missing = run("exclude", NEJM, "--reason", "", ok=False)
    assert isinstance(missing.exception, CurationError)
    run("approve", "22663011")
    run("tag", NEJM, "--tag", "melanoma")
    run("pin", NEJM, "--topic", "Melanoma digest")
    run("note", NEJM, "Pivotal trial")
    shown = json.loads(run("show", NEJM, "--json").stdout)
    assert shown["decision"]["status"] == "approved" and shown["pins"] == ["Melanoma digest"]
    ids = tmp_path / "ids.txt"
    ids.write_text("12345678\nNCT01234567\n")
    report = json.loads(run("import", str(ids), "--exclude", "--reason", "retracted elsewhere", "--json").stdout)
    assert report["not_in_catalog"] == ["pubmed:12345678", "ctgov:NCT01234567"]
    excluded = json.loads(run("exclusions", "--json").stdout)
    assert set(excluded) == {"pubmed:1002", "pubmed:12345678", "ctgov:NCT01234567"}
    out = tmp_path / "set.ris"
    run("export", "--format", "ris", "--out", str(out), "--tag", "melanoma")
    [entry] = rispy.loads(out.read_text(encoding="utf-8"))
    assert entry["id"] == NEJM and "oncolit:melanoma" in entry["keywords"]
    [note] = entry["notes"]
    assert note.startswith("lib ") and note.endswith(": Pivotal trial"), "the librarian's notes go out"
    for fmt, name in (("nbib", "set.nbib"), ("bibtex", "set.bib"), ("csljson", "set.json"), ("csv", "set.csv")):
        run("export", "--format", fmt, "--out", str(tmp_path / name), "--tag", "melanoma")
    assert f"GN  - {note}" in (tmp_path / "set.nbib").read_text(encoding="utf-8")
    assert f"  note = {{{note}}}" in (tmp_path / "set.bib").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "set.json").read_text(encoding="utf-8"))[0]["note"] == note
    assert (tmp_path / "set.csv").read_bytes().startswith(b"\xef\xbb\xbfrecord_id,")
    assert run("export", "--format", "docx", ok=False).exit_code == 2
    audit_file = tmp_path / "audit.jsonl"
    run("audit", "--export", str(audit_file))
    entries = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert {(e["actor"], e["action"]) for e in entries} >= {
        ("ada", "user.add"), ("lib", "rule.add"), ("lib", "record.approve"), ("lib", "record.pin"),
        ("lib", "record.exclude")}
    with Catalog(settings.resolved_catalog_url) as catalog:
        assert Curation(catalog).is_excluded("pubmed:1002")


def test_cli_sources_and_keys(cli) -> None:
    run, settings = cli
    run("users", "add", "ada", "--role", "admin", user="ada")
    run("users", "add", "lib", user="ada")
    run("sources", "add", "mel", "--query", "melanoma", "--backfill", "2026-01-01")
    row = json.loads(run("sources", "update", "mel", "--query", "melanoma[mh]", "--json").stdout)
    assert row["watermark"] != "2026-01-01", "a new query starts a new watermark"
    row = json.loads(run("sources", "update", "mel", "--backfill", "2025-01-01", "--json").stdout)
    assert row["watermark"] == "2025-01-01"
    run("sources", "pause", "mel")
    listed = json.loads(run("sources", "list", "--json").stdout)
    assert listed[0]["active"] is False and listed[0]["owner"] == "lib"
    created = run("keys", "create", "--label", "laptop")
    token = created.stdout.strip()
    assert token.startswith("olk_")
    keys = run("keys", "list", "--json").stdout
    assert token not in keys and json.loads(keys)[0]["user_name"] == "lib"
    with Catalog(settings.resolved_catalog_url) as catalog:
        assert Curation(catalog).authenticate(token)[0].name == "lib"
    assert isinstance(run("users", "add", "eve", user="lib", ok=False).exception, PermissionDenied)


def test_operator_searches_commands_are_audited_without_a_curation_user(tmp_path, monkeypatch) -> None:
    """`oncolit searches add/remove` needs no curation user, but the librarians' audit log shows both."""
    import json

    from typer.testing import CliRunner

    from oncolit.cli.common import get_settings
    from oncolit.cli.main import app

    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ONCOLIT_USER", "ops")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        added = runner.invoke(app, ["searches", "add", "mel", "--query", "melanoma[mh]", "--json"])
        assert added.exit_code == 0, added.output
        assert runner.invoke(app, ["searches", "remove", "mel"]).exit_code == 0
        bad = runner.invoke(app, ["searches", "add", "x", "--query", "q", "--schedule", "not cron"])
        assert bad.exit_code == 1 and "invalid cron expression" in str(bad.exception)  # main() prints it as error:
        log = runner.invoke(app, ["curate", "audit", "--entity", "search", "--json"])
        assert log.exit_code == 0, log.output
        rows = json.loads(log.output)
        assert [(r["action"], r["actor"], r["entity_id"]) for r in rows] == [("search.remove", "ops", "mel"),
                                                                            ("search.add", "ops", "mel")]
    finally:
        get_settings.cache_clear()
