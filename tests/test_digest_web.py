"""A digest as sent and what it links to (issue 16): RFC 2045 line lengths in every part, the signed one-click
unsubscribe (RFC 8058 headers; POST unsubscribes, GET only confirms, forged tokens get 403), and the web view of
the whole digest served by the same router `oncolit serve` mounts (FastAPI's test client, real catalog)."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest.catalog import Catalog
from oncolit.delivery import links
from oncolit.delivery.run import run_digests
from oncolit.delivery.subscribers import add_subscriber, get_subscriber
from oncolit.web import create_router
from tests.test_digest import DAY, NEJM, make_settings, melanoma_topics, real_catalog, smtp_server

BASE = "https://oncolit.example.org"
SECRET = "test-secret-not-for-production"


@pytest.fixture
def catalog(shared_data: Path, isolated_env: Path) -> Iterator[Catalog]:
    with real_catalog(shared_data, isolated_env) as cat:
        yield cat


@pytest.fixture
def smtp_sink() -> Iterator[tuple[object, int]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def sent(catalog: Catalog, smtp_sink, isolated_env: Path):  # noqa: ANN001, ANN201
    sink, port = smtp_sink
    settings = make_settings(isolated_env, smtp_port=port, web_base_url=BASE, secret=SECRET,
                             max_items_per_topic=2)
    add_subscriber(catalog, "ana@example.org", melanoma_topics(), name="Dr Ana")
    assert run_digests(settings, catalog, day=DAY, llm=None, scorer=None)["sent"] == 1
    app = FastAPI()
    app.include_router(create_router(settings, catalog=catalog, evidence=None))
    return settings, sink.messages[-1], TestClient(app), get_subscriber(catalog, "ana@example.org")


def test_every_body_line_of_every_part_is_at_most_76_characters(sent) -> None:  # noqa: ANN001
    _settings, raw, _client, _sub = sent
    msg = email.message_from_bytes(raw, policy=policy.SMTP)
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        body = part.get_payload(decode=False)
        lines = body.split("\n")
        too_long = [line for line in lines if len(line.rstrip("\r")) > 76]
        assert not too_long, (part.get_content_type(), len(too_long), too_long[:2])
        assert len(lines) > 20
    # Raw lines of the whole message body (after the headers) too, as a relay sees them.
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    html = msg.get_body(preferencelist=("html",)).get_content()
    assert "22663011" in html and "</html>" in html  # decodes back whole
    # The overview as the findings models and rules read the NEJM trial: its HR clause points the right way.
    assert "HR 0.45 (95% CI 0.33 to 0.63; p&lt;0.001), lower hazard" in html and "higher hazard" not in html


def test_list_unsubscribe_is_signed_one_click(sent) -> None:  # noqa: ANN001
    _settings, raw, _client, sub = sent
    msg = email.message_from_bytes(raw, policy=policy.default)
    header = str(msg["List-Unsubscribe"])
    urls = re.findall(r"<([^>]+)>", header)
    token = links.signer(SECRET).unsubscribe_token(sub.id, sub.email)  # type: ignore[union-attr]
    assert urls[0] == f"{BASE}/unsubscribe/{token}" and urls[1].startswith("mailto:digests@oncolit.test")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sub.token not in header  # the stored random token is not what the link carries


def test_one_click_unsubscribe_post_only_and_forged_tokens_refused(sent, catalog: Catalog) -> None:  # noqa: ANN001
    _settings, raw, client, sub = sent
    msg = email.message_from_bytes(raw, policy=policy.default)
    path = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))[0].removeprefix(BASE)
    # GET (a link scanner, a preview, the reader's click) only shows the confirm page.
    page = client.get(path)
    assert page.status_code == 200 and 'method="post"' in page.text and sub.email in page.text
    assert get_subscriber(catalog, sub.id).active
    # Forged or altered tokens: 403 with a page that says what to do, and nothing changes.
    forged = path[:-1] + ("A" if path[-1] != "A" else "B")
    other = links.signer("another-secret").unsubscribe_token(sub.id, sub.email)  # type: ignore[union-attr]
    for bad in (forged, f"/unsubscribe/{other}", "/unsubscribe/1.short", "/unsubscribe/nonsense"):
        for method in (client.get, client.post):
            answer = method(bad)
            assert answer.status_code == 403 and "not valid" in answer.text, (bad, answer.status_code)
    assert get_subscriber(catalog, sub.id).active
    # The mail provider's RFC 8058 one-click POST unsubscribes.
    done = client.post(path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "no more" in done.text
    assert not get_subscriber(catalog, sub.id).active
    assert "already unsubscribed" in client.get(path).text


def test_more_not_shown_links_to_the_whole_digest_on_the_web(sent) -> None:  # noqa: ANN001
    _settings, raw, client, sub = sent
    msg = email.message_from_bytes(raw, policy=policy.default)
    html = msg.get_body(preferencelist=("html",)).get_content()
    more = re.findall(r'href="([^"]+#topic-\d+)"[^>]*>(\d+) more in this topic', html)
    assert more, "the 'more not shown' line links to the web view"
    url, count = more[0]
    url = url.replace("&amp;", "&")
    assert url.startswith(f"{BASE}/digests/{sub.id}/{DAY.isoformat()}?sig=")
    page = client.get(url.removeprefix(BASE).split("#")[0])
    assert page.status_code == 200
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    text = page.text
    # Topics in the subscriber's order, every item the e-mail had no room for listed.
    assert text.index("Melanoma") < text.index("Lung")
    assert f"Not shown in the e-mail ({count})" in text
    assert len(re.findall(r"<li><p>", text.split(f"Not shown in the e-mail ({count})")[1])) >= int(count)
    assert "pubmed.ncbi.nlm.nih.gov/22663011" in text
    # A wrong signature, or another period, is refused.
    path = url.removeprefix(BASE).split("#")[0]
    assert client.get(path[:-2] + "xx").status_code == 403
    assert client.get(path.replace(DAY.isoformat(), "2026-11-26")).status_code == 403
    assert NEJM.split(":")[1] in text


def test_the_app_oncolit_serve_runs_serves_the_digest_links(sent, catalog: Catalog) -> None:  # noqa: ANN001
    """The same pages through `oncolit.api.create_app` (what `oncolit serve` runs), over its own resources."""
    from oncolit.api import create_app
    from synthesis.llm.none_backend import NoneLLM

    settings, raw, _client, sub = sent
    msg = email.message_from_bytes(raw, policy=policy.default)
    unsubscribe = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))[0].removeprefix(BASE)
    html = msg.get_body(preferencelist=("html",)).get_content()
    view = re.findall(r'href="([^"]+)#topic-\d+"', html)[0].replace("&amp;", "&").removeprefix(BASE)
    with TestClient(create_app(settings, llm=NoneLLM())) as client:
        assert client.get(view).status_code == 200
        assert client.post(unsubscribe, content=b"List-Unsubscribe=One-Click",
                           headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 200
        assert client.post("/unsubscribe/1." + "x" * 32).status_code == 403
        assert "/unsubscribe/{token}" not in client.get("/openapi.json").text  # pages, not API
    assert not get_subscriber(catalog, sub.id).active


def test_without_a_secret_no_signed_links_and_a_warning_says_so(catalog: Catalog, isolated_env: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    settings = make_settings(isolated_env, web_base_url=BASE)
    add_subscriber(catalog, "bo@example.org", melanoma_topics())
    with caplog.at_level("WARNING"):
        out = run_digests(settings, catalog, day=DAY, llm=None, scorer=None, dry_run=True, out_dir=isolated_env / "o")
    assert any("digest.secret is not" in r.getMessage() for r in caplog.records)
    raw = Path(out["results"][0]["files"]["eml"]).read_bytes()
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert str(msg["List-Unsubscribe"]).startswith("<mailto:") and msg["List-Unsubscribe-Post"] is None
    assert BASE not in msg.get_body(preferencelist=("html",)).get_content()
