"""A subscriber's path through a digest in a real headless Chromium (Debian's, driven by Playwright; no browser
download): open the e-mail as sent, follow "N more not shown" to the web view of the whole digest, follow
"Unsubscribe" to the confirm page, unsubscribe by keyboard; a forged link gets the 403 page. The pages are
served by uvicorn on loopback by the router `oncolit serve` mounts. Screenshots go to test-artifacts/."""

from __future__ import annotations

import email
import shutil
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from fastapi import FastAPI

from ingest.catalog import Catalog
from oncolit.delivery.run import run_digests
from oncolit.delivery.subscribers import add_subscriber, get_subscriber
from oncolit.web import create_router
from tests.helpers import loopback_socket, serve_on_loopback
from tests.test_digest import DAY, make_settings, melanoma_topics, real_catalog, smtp_server
from tests.test_web_curation import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def served(shared_data: Path, isolated_env: Path) -> Iterator[tuple[str, str, Catalog]]:
    """A digest sent through a loopback SMTP server, then the web router served on loopback."""
    sock = loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with real_catalog(shared_data, isolated_env) as catalog, smtp_server() as (sink, port):
        settings = make_settings(isolated_env, smtp_port=port, web_base_url=base, secret="browser-test-secret",
                                 max_items_per_topic=2)
        add_subscriber(catalog, "ana@example.org", melanoma_topics(), name="Dr Ana")
        assert run_digests(settings, catalog, day=DAY, llm=None, scorer=None)["sent"] == 1
        msg = email.message_from_bytes(sink.messages[-1], policy=policy.default)
        html = msg.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        app = FastAPI()
        app.include_router(create_router(settings, catalog=catalog, evidence=None))
        with serve_on_loopback(app, sock=sock):
            yield base, html, catalog


def test_more_link_web_view_and_unsubscribe_in_headless_chromium(served: tuple[str, str, Catalog]) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (or set ONCOLIT_CHROMIUM)")
    base, html, catalog = served
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error"
                    and "favicon" not in msg.text else None)

            # The e-mail as sent: its "more not shown" line is a link to the web view of that topic.
            page.set_content(html)
            more = page.get_by_role("link", name="more in this topic not shown")
            expect(more.first).to_be_visible()
            more.first.click()
            expect(page.get_by_role("heading", level=1)).to_contain_text("OncoLit daily digest")
            assert page.url.startswith(f"{base}/digests/") and page.url.endswith("#topic-2")
            lung = page.locator("#topic-2")
            expect(lung.get_by_role("heading", level=2)).to_have_text("Lung")
            expect(lung.get_by_role("heading", level=3)).to_contain_text("Not shown in the e-mail")
            assert lung.locator("ol.more-items > li").count() >= 1
            expect(page.get_by_role("navigation", name="Topics").get_by_role("link")).to_have_text(["Melanoma", "Lung"])
            page.screenshot(path=str(ARTIFACTS / "digest-web-view.png"), full_page=True)

            # Unsubscribe: the e-mail's link shows a confirm page; nothing changes until the button is pressed.
            page.goto("about:blank")  # as a mail client shows it: not under the server's CSP
            page.set_content(html)
            page.get_by_role("link", name="Unsubscribe").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from OncoLit digests")
            assert get_subscriber(catalog, "ana@example.org").active
            button = page.get_by_role("button", name="Unsubscribe ana@example.org")
            button.focus()
            page.keyboard.press("Enter")
            expect(page.get_by_role("status")).to_have_text("ana@example.org will receive no more OncoLit digests.")
            page.screenshot(path=str(ARTIFACTS / "digest-unsubscribed.png"), full_page=True)
            assert not get_subscriber(catalog, "ana@example.org").active

            # A forged link: a 403 page that says what to do.
            answer = page.goto(f"{base}/unsubscribe/1.{'A' * 32}")
            assert answer is not None and answer.status == 403
            expect(page.get_by_role("alert")).to_contain_text("This link is not valid")
        finally:
            browser.close()
    assert not [p for p in problems if "403" not in p], problems
