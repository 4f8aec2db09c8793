"""In headless Chromium (Debian's, as tests/test_web_curation.py drives it): the record page's evidence next
to the decision, the queue's search box and date sort, pinning from the topic list; and /docs + /redoc
rendering with no request leaving loopback (issue 16, "Pages and API"). Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from oncolit.api import create_app
from oncolit.delivery.subscribers import add_subscriber
from synthesis.digest import Topic
from tests.helpers import serve_on_loopback
from tests.test_api_docs import light
from tests.test_web_curation import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, NEJM, site  # noqa: F401  (site: a fixture)


def need_chromium() -> None:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set ONCOLIT_CHROMIUM)")


def test_record_evidence_queue_search_and_pinning_in_chromium(site) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    need_chromium()
    base, key, cur = site
    add_subscriber(cur.catalog, "ana@example.org", [Topic(name="Melanoma", query="BRAF melanoma"),
                                                    Topic(name="Lung", query="NSCLC")])
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error"
                    and "favicon" not in msg.text else None)
            page.goto(f"{base}/librarian/queue")
            page.get_by_label("API key").fill(key)
            page.keyboard.press("Enter")
            expect(page.get_by_text("3 awaiting review")).to_be_visible()
            expect(page.locator("#relevance-why")).to_contain_text("needs at least 2 approved and 2 excluded")

            # Search by keyboard: type in the box, Enter; one record is left, the box keeps the words.
            page.get_by_label("Search").fill("trametinib")
            page.keyboard.press("Enter")
            expect(page.get_by_text("1 awaiting review")).to_be_visible()
            expect(page.get_by_label("Search")).to_have_value("trametinib")
            page.get_by_role("link", name="Clear search").click()
            page.get_by_label("Sort by").select_option("published")
            page.get_by_role("button", name="Show").click()
            expect(page.get_by_text("3 awaiting review")).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "curation-queue-search.png"), full_page=True)

            # The record page: the grade and findings between the decision and the abstract.
            title = cur.catalog.get(NEJM)["title"]
            page.get_by_role("link", name=title).click()
            evidence = page.get_by_role("region", name="Evidence")
            expect(evidence).to_contain_text("Level 1b")
            expect(evidence.get_by_role("listitem").filter(has_text="sample size 322")).to_be_visible()
            row = evidence.get_by_role("row").filter(has_text="HR 0.45")
            expect(row).to_contain_text("progression-free survival")
            expect(row).to_contain_text("decreased")
            expect(row).to_contain_text("95% confidence interval [CI], 0.33 to 0.63")

            # Pin from the list of the subscribers' topics.
            page.get_by_label("Topic", exact=True).select_option("Melanoma")
            page.get_by_role("button", name="Pin").click()
            expect(page.get_by_role("status")).to_have_text("Pinned.")
            expect(page.get_by_role("region", name="Pinned to topics")).to_contain_text("Melanoma")
            page.screenshot(path=str(ARTIFACTS / "curation-record-evidence.png"), full_page=True)

            page.get_by_role("link", name="Subscribers").click()
            expect(page.get_by_role("row").filter(has_text="ana@example.org")).to_contain_text("Melanoma")
        finally:
            browser.close()
    assert not problems, problems
    assert cur.pins() == {"Melanoma": [NEJM]}


@pytest.fixture
def api_site(tmp_path: Path) -> Iterator[str]:
    """The whole app on loopback, without its lifespan: the docs need no catalog or index."""
    with serve_on_loopback(create_app(light(tmp_path)), lifespan="off") as base:
        yield base


def test_docs_render_offline_in_chromium(api_site: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    need_chromium()
    elsewhere: list[str] = []
    blocked: list[str] = []  # stopped by the page's Content-Security-Policy: never sent
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("requestfailed", lambda req: blocked.append(req.url) if req.failure == "csp" else None)
            page.on("request", lambda req: elsewhere.append(req.url)
                    if urlsplit(req.url).hostname not in ("127.0.0.1", None) and not req.url.startswith("data:")
                    else None)
            page.goto(f"{api_site}/docs")
            expect(page.locator(".opblock-summary-path").filter(has_text="/search").first).to_be_visible()
            expect(page.get_by_role("button", name="Authorize")).to_be_visible()  # the declared key schemes
            page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
            page.goto(f"{api_site}/redoc")
            expect(page.get_by_role("heading", name="Hybrid search over the index")).to_be_visible()
            expect(page.get_by_role("menuitem", name="curation")).to_be_visible()
        finally:
            browser.close()
    # ReDoc's bundle asks cdn.redoc.ly for its footer logo; the docs' CSP stops it in the browser.
    assert not set(elsewhere) - set(blocked), f"the docs reached other hosts: {set(elsewhere) - set(blocked)}"
