"""The outside interface (`oncolit digest --dry-run --out DIR --json`) and the HTML as a browser shows it:
headless Chromium (Debian's `chromium`) screenshots in light and dark mode, kept under test-artifacts/."""

from __future__ import annotations

import datetime as dt
import email
import json
import shutil
import subprocess
from email import policy
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ingest.catalog import Catalog
from oncolit.cli import digest_cmd
from oncolit.cli.common import get_settings
from oncolit.delivery import sendlog
from oncolit.delivery.run import run_digests
from oncolit.delivery.subscribers import add_subscriber
from tests.conftest import REPO
from tests.test_digest import (
    DAY,
    NEJM,
    hostile_article,
    make_settings,
    melanoma_topics,
    real_catalog,
    real_items,
    retraction_notice,
    smtp_server,
    trial_revision,
)

ARTIFACTS = REPO / "test-artifacts"


def test_cli_dry_run_writes_one_eml_per_subscriber(shared_data: Path, isolated_env: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ONCOLIT_LLM__BACKEND", "none")
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        catalog.ingest_batch(real_items(shared_data))
    app = typer.Typer()
    app.add_typer(digest_cmd.subscribers_app, name="subscribers")
    app.command("digest")(digest_cmd.digest)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> dict:
        result = runner.invoke(app, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    try:
        run("subscribers", "add", "ana@example.org", "--topic", "Melanoma: BRAF MEK inhibitor melanoma",
            "--timezone", "Europe/Paris")
        run("subscribers", "add", "bo@example.org", "--topic", "Lung: non-small cell lung cancer EGFR",
            "--format", "text", "--frequency", "weekly")
        out = tmp_path / "out"
        report = run("digest", "--date", DAY.isoformat(), "--dry-run", "--out", str(out))
        again = run("digest", "--subscriber", "bo@example.org", "--date", DAY.isoformat(), "--dry-run",
                    "--out", str(tmp_path / "again"))
    finally:
        get_settings.cache_clear()
    written = report["written"]
    assert report["dry_run"] and [w["subscriber"] for w in written] == ["ana@example.org", "bo@example.org"]
    assert sorted(p.name for p in out.glob("*.eml")) == ["ana@example.org-2026-11-27.eml",
                                                         "bo@example.org-2026-W48.eml"]
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        for w in written:
            assert w["status"] == "dry_run" and Path(w["eml"]).is_file() and w["items"] > 0
            msg = email.message_from_bytes(Path(w["eml"]).read_bytes(), policy=policy.default)
            assert msg["Message-ID"] == w["message_id"] and msg["To"].addresses[0].addr_spec == w["subscriber"]
            assert w["cited"] and all(catalog.exists(rid) for rid in w["cited"])
            doc = json.loads(Path(w["files"]["json"]).read_text())
            assert set(doc["cited"]) == set(w["cited"]) and doc["schema"] == "oncolit-digest/v1"
        kinds = [p.get_content_type() for p in email.message_from_bytes(
            Path(written[1]["eml"]).read_bytes(), policy=policy.default).walk()]
        assert kinds == ["text/plain"]  # format text: no HTML part
        assert NEJM in written[0]["cited"]
        # A dry run sends and records nothing, and the next one builds the same message.
        assert all(sendlog.history(catalog, sid) == [] for sid in (1, 2))
        assert again["written"][0]["message_id"] == written[1]["message_id"]


def _sent_html(catalog: Catalog, shared_data: Path, sink, port: int, data_dir: Path) -> str:  # noqa: ANN001
    settings = make_settings(data_dir, smtp_port=port)
    add_subscriber(catalog, "ana@example.org", melanoma_topics(), name="Dr Ana")
    assert run_digests(settings, catalog, day=DAY - dt.timedelta(days=1), llm=None, scorer=None)["sent"] == 1
    catalog.ingest_batch([retraction_notice(catalog, "22663011"), hostile_article(catalog),
                          trial_revision(shared_data)])
    assert run_digests(settings, catalog, day=DAY, llm=None, scorer=None)["sent"] == 1
    msg = email.message_from_bytes(sink.messages[-1], policy=policy.default)
    return msg.get_body(preferencelist=("html",)).get_content()


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise FileNotFoundError("Debian's `chromium` is needed for this test: apt-get install -y chromium")
    return path


def _browser(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=90, check=True)


def test_html_digest_in_headless_chromium(shared_data: Path, isolated_env: Path, tmp_path: Path) -> None:
    """A digest with a retraction alert, a trial update and a hostile title, sent and then rendered."""
    from PIL import Image

    with real_catalog(shared_data, isolated_env) as catalog, smtp_server() as (sink, port):
        html = _sent_html(catalog, shared_data, sink, port, isolated_env)
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {}
    for mode, extra in (("light", []), ("dark", ["--force-dark-mode"])):
        shot = ARTIFACTS / f"digest-{mode}.png"
        shot.unlink(missing_ok=True)
        _browser(*extra, "--window-size=720,1600", f"--screenshot={shot}", page.as_uri(), profile=tmp_path / mode)
        assert shot.is_file() and shot.stat().st_size > 20_000
        shots[mode] = Image.open(shot).convert("RGB")
    # Light page background, then dark: the prefers-color-scheme rules apply.
    assert shots["light"].getpixel((4, 4)) == (242, 244, 247)
    assert sum(shots["dark"].getpixel((4, 4))) < 120
    # The alert box (red-tinted) is drawn above the first topic card in both.
    dom = _browser("--dump-dom", page.as_uri(), profile=tmp_path / "dom").stdout
    assert "<script" not in dom.lower() and "onerror" not in dom.replace("onerror=alert(1)&gt;", "")
    assert "BRAF melanoma &lt;script&gt;alert(\"x\")&lt;/script&gt;" in dom
    assert dom.find("Retraction alert") < dom.find("Trial update") and dom.find("Retraction alert") > 0
