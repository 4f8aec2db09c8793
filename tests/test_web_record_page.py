"""The librarian record page shows the grade, its reasons and the findings where the decision is made; the
queue searches text, sorts by publication date and says why relevance is empty; pins take a subscriber's
topic from a list; the subscribers page lists them (issue 16, "Pages and API")."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.curation import Curation
from ingest.pubmed_xml import parse_pubmed_xml
from oncolit.delivery.subscribers import add_subscriber
from oncolit.settings import Settings
from oncolit.web import create_router
from synthesis.digest import Topic

NEJM, HOSTILE, TRIAL = "pubmed:22663011", "pubmed:90000011", "ctgov:NCT02576665"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pubmed"


@pytest.fixture
def env(tmp_path: Path, shared_data: Path) -> Iterator[tuple[TestClient, Curation, Catalog, str]]:
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items += parse_pubmed_xml((FIXTURES / "hostile_title.xml").read_bytes())
    items += list(iter_ctgov_path(shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json"))
    settings = Settings(data_dir=tmp_path)
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "lib", "librarian")
        key = cur.create_key("ada", "lib")[1]
        app = FastAPI()
        app.include_router(create_router(settings, catalog=catalog, evidence=None))
        with TestClient(app) as client:
            page = client.get("/librarian/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            assert client.post("/librarian/login", data={"key": key, "next": "/librarian/queue", "csrf": token},
                               follow_redirects=False).status_code == 303
            yield client, cur, catalog, key


def text_of(html: str) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def section(html: str, heading_id: str) -> str:
    start = html.index(f'aria-labelledby="{heading_id}"')
    return html[start:html.index("</section>", start)]


def test_record_page_shows_grade_reasons_and_findings_beside_the_decision(env) -> None:
    client, _cur, _catalog, _key = env
    html = client.get(f"/librarian/records/{NEJM}").text
    assert html.index('id="status-h"') < html.index('id="evidence-h"') < html.index('id="text-h"')
    evidence = text_of(section(html, "evidence-h"))
    assert "Level 1b" in evidence and "randomised controlled trial" in evidence
    assert "phase III" in evidence and "sample size 322" in evidence and "open-label" in evidence  # the reasons
    assert "progression-free survival" in evidence and "primary" in evidence
    assert "HR 0.45 (95% CI 0.33–0.63), p < 0.001" in evidence and "decreased" in evidence
    assert "median 4.8 months vs 1.5 months" in evidence
    assert "hazard ratio for disease progression or death in the trametinib group, 0.45" in evidence  # the quote
    assert "the rules, run for this page" in evidence
    trial = text_of(section(client.get(f"/librarian/records/{TRIAL}").text, "evidence-h"))
    assert "Level" in trial and "terminated early" in trial


def test_queue_text_search_and_publication_date_sort(env) -> None:
    client, _cur, _catalog, _key = env
    def ids(html: str) -> list[str]:
        return re.findall(r'name="record_id" value="([^"]+)"', html)

    everything = ids(client.get("/librarian/queue").text)
    assert set(everything) == {NEJM, HOSTILE, TRIAL}
    assert ids(client.get("/librarian/queue", params={"q": "trametinib"}).text) == [NEJM]  # in title and abstract
    assert ids(client.get("/librarian/queue", params={"q": "TRAMETINIB progression"}).text) == [NEJM]
    assert ids(client.get("/librarian/queue", params={"q": "trametinib zzqx"}).text) == []  # every word must match
    none = client.get("/librarian/queue", params={"q": "100%_"}).text  # LIKE wildcards are literal
    assert ids(none) == [] and "No record awaiting review matches" in none
    by_date = client.get("/librarian/queue", params={"sort": "published"}).text
    days = {rid: _catalog.get(rid)["published"] for rid in everything}
    assert len(set(days.values())) == 3, days  # three different days: the order is the sort's, not chance
    assert ids(by_date) == sorted(everything, key=lambda rid: days[rid], reverse=True)
    assert 'value="published" selected' in by_date


def test_curation_json_queue_takes_the_same_search_and_sort(env) -> None:
    client, _cur, _catalog, key = env
    auth = {"Authorization": f"Bearer {key}"}
    found = client.get("/curation/queue", params={"q": "trametinib", "sort": "published"}, headers=auth).json()
    assert found["sort"] == "published" and [i["record_id"] for i in found["items"]] == [NEJM]
    assert client.get("/curation/queue", params={"sort": "oldest"}, headers=auth).status_code == 422


def test_relevance_column_says_why_it_is_empty(env) -> None:
    client, cur, _catalog, _key = env
    html = client.get("/librarian/queue").text
    assert "not scored" in html
    assert "needs at least 2 approved and 2 excluded records (so far 0 approved, 0 excluded)" in text_of(html)


def test_pin_takes_a_subscribers_topic_from_a_list(env) -> None:
    client, cur, catalog, _key = env
    html = client.get(f"/librarian/records/{NEJM}").text
    assert 'id="pin-topic"' not in html and "No topics yet" in html
    add_subscriber(catalog, "ana@example.org", [Topic(name="Melanoma", query="BRAF melanoma"),
                                                Topic(name="Lung", query="NSCLC")])
    html = client.get(f"/librarian/records/{NEJM}").text
    pins = section(html, "pins-h")
    assert '<select id="pin-topic" name="topic" required>' in pins
    assert re.findall(r'<option value="([^"]+)">', pins) == ["Lung", "Melanoma"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    r = client.post(f"/librarian/records/{NEJM}/pin", data={"csrf": csrf, "topic": "Melanomma"})
    assert r.status_code == 400 and "not a subscriber&#39;s topic" in r.text and cur.pins() == {}
    r = client.post(f"/librarian/records/{NEJM}/pin", data={"csrf": csrf, "topic": "Melanoma"})
    assert r.status_code == 200 and cur.pins() == {"Melanoma": [NEJM]}
    pins = section(r.text, "pins-h")
    assert re.findall(r'<option value="([^"]+)">', pins) == ["Lung"]  # one already pinned is not offered again


def test_subscribers_page_lists_subscribers_and_their_topics(env) -> None:
    client, cur, catalog, _key = env
    empty = client.get("/librarian/subscribers")
    assert empty.status_code == 200 and "No subscribers yet" in empty.text
    add_subscriber(catalog, "ana@example.org", [Topic(name="Melanoma", query="BRAF melanoma"),
                                                Topic(name="Lung", query="NSCLC")], name="Ana", frequency="weekly",
                   timezone="Europe/Paris", min_level="2b")
    cur.add_search("lib", "trials", "ctgov", "melanoma")
    add_subscriber(catalog, "bo@example.org", [Topic(name="Trials", search="trials")])
    cur.pin("lib", NEJM, "Melanoma")
    page = text_of(client.get("/librarian/subscribers").text)
    assert "2 subscribers, 2 receiving digests" in page
    assert "Ana ana@example.org" in page and "weekly, html, Europe/Paris" in page and "level 2b or stronger" in page
    assert page.index("Melanoma — BRAF melanoma") < page.index("Lung — NSCLC")  # the subscriber's order
    assert "Melanoma — BRAF melanoma · 1 pinned" in page and "(saved search trials)" in page
    assert 'href="/librarian/subscribers"' in client.get("/librarian/queue").text  # in the navigation


def test_subscribers_page_needs_a_session(tmp_path: Path) -> None:
    app = FastAPI()
    with Catalog(Settings(data_dir=tmp_path).resolved_catalog_url) as catalog:
        app.include_router(create_router(Settings(data_dir=tmp_path), catalog=catalog, evidence=None))
        with TestClient(app) as client:
            r = client.get("/librarian/subscribers", follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"].startswith("/librarian/login")
