"""The librarian pages in a real headless Chromium (Debian's, driven by Playwright's Python package; no
browser download): log in with a key by keyboard, approve and exclude from the queue, see both in the
audit log, and find hostile record text shown as text. Screenshots go to test-artifacts/."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.curation import Curation
from ingest.pubmed_xml import parse_pubmed_xml
from oncolit.settings import Settings
from oncolit.web import create_router
from tests.helpers import serve_on_loopback

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("ONCOLIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pubmed"
NEJM, HOSTILE, TRIAL = "pubmed:22663011", "pubmed:90000011", "ctgov:NCT02576665"


@pytest.fixture
def site(tmp_path: Path, shared_data: Path) -> Iterator[tuple[str, str, Curation]]:
    """A catalog with three records, a librarian and her key, served by uvicorn on loopback."""
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items += parse_pubmed_xml((FIXTURES / "hostile_title.xml").read_bytes())
    items += list(iter_ctgov_path(shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json"))
    settings = Settings(data_dir=tmp_path)
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "lib", "librarian")
        _key_id, key = cur.create_key("ada", "lib", "browser test")
        app = FastAPI()
        app.include_router(create_router(settings, catalog=catalog, evidence=None))
        with serve_on_loopback(app) as base:
            yield base, key, cur


def test_librarian_pages_in_headless_chromium(site, caplog: pytest.LogCaptureFixture) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set ONCOLIT_CHROMIUM)")
    base, key, cur = site
    caplog.set_level(logging.INFO)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})  # a laptop screen
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error"
                    and "favicon" not in msg.text else None)
            page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))

            # Log in by keyboard: the labelled key field has the focus, Enter submits.
            page.goto(f"{base}/librarian/queue")
            expect(page).to_have_url(f"{base}/librarian/login?next=%2Flibrarian%2Fqueue")
            expect(page.get_by_label("API key")).to_be_focused()
            page.keyboard.type(key)
            page.keyboard.press("Enter")
            expect(page.get_by_role("heading", level=1)).to_contain_text("Curation queue")
            expect(page.get_by_text("3 awaiting review")).to_be_visible()
            page.keyboard.press("Tab")  # the first stop on every page skips the navigation
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"

            # Approve one record, then exclude another with a reason, from the queue.
            nejm_title = cur.catalog.get(NEJM)["title"]
            page.get_by_role("checkbox", name=nejm_title).check()
            page.get_by_role("button", name="Approve", exact=True).click()
            expect(page.get_by_role("status")).to_have_text("Approved 1 record(s).")
            expect(page.get_by_text("2 awaiting review")).to_be_visible()

            trial_title = cur.catalog.get(TRIAL)["title"]
            page.get_by_role("checkbox", name=trial_title).check()
            page.get_by_label("Exclusion reason").fill("phase I, out of scope")
            page.get_by_role("button", name="Exclude", exact=True).click()
            expect(page.get_by_role("status")).to_have_text("Excluded 1 record(s).")
            expect(page.get_by_text("1 awaiting review")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "curation-queue.png"), full_page=True)

            # The audit log shows who did what, with the reason.
            page.get_by_role("link", name="Audit log").click()
            rows = page.get_by_role("row")
            expect(rows.filter(has_text="record.approve").filter(has_text=NEJM)).to_contain_text("lib")
            expect(rows.filter(has_text="record.exclude").filter(has_text=TRIAL)).to_contain_text(
                "phase I, out of scope")
            page.screenshot(path=str(ARTIFACTS / "curation-audit.png"), full_page=True)

            # The excluded trial says why; hostile text stays text, even in a librarian's note.
            page.goto(f"{base}/librarian/records/{TRIAL}")
            expect(page.locator(".status")).to_contain_text("Reason: phase I, out of scope")
            page.goto(f"{base}/librarian/records/{HOSTILE}")
            expect(page.get_by_role("heading", level=1)).to_have_text("<script>alert(1)</script> Trial")
            page.get_by_label("New note").fill('<img src=x onerror="window.__xss=1">')
            page.get_by_role("button", name="Add note").click()
            expect(page.locator("blockquote.note")).to_contain_text('<img src=x onerror="window.__xss=1">')
            assert page.evaluate("window.__xss") is None
            page.screenshot(path=str(ARTIFACTS / "curation-record.png"), full_page=True)
        finally:
            browser.close()
    assert not problems, problems
    assert cur.verdict(NEJM).decision == "approved" and cur.verdict(TRIAL).excluded
    assert (ARTIFACTS / "curation-audit.png").stat().st_size > 10_000
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /librarian/audit" in logged, "the server's access log is captured"
    assert key not in logged and key.split("_", 2)[2] not in logged, "keys are never logged"
