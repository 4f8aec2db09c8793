"""The curation HTTP API and pages under a real FastAPI app: access control on every write route,
keys never logged or echoed, sessions and CSRF for the pages, and record text escaped in HTML."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.curation import Curation
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.replay import ReplayServer
from oncolit.settings import Settings
from oncolit.web import create_router

NEJM = "pubmed:22663011"
HOSTILE = "pubmed:90000011"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pubmed"


@pytest.fixture(scope="module")
def replay(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("pubmed")
    (folder / "hoc-0001.xml.gz").symlink_to(shared_data / "pubmed" / "constructed" / "hoc-0001.xml.gz")
    with ReplayServer(pubmed_dir=folder) as server:
        yield server


@pytest.fixture
def env(tmp_path: Path, shared_data: Path, replay: ReplayServer):
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    items += parse_pubmed_xml((FIXTURES / "hostile_title.xml").read_bytes())
    items += list(iter_ctgov_path(shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json"))
    # Many wrong keys on purpose from one client: the throttle (tests/reliability/test_http.py) is raised here.
    settings = Settings(data_dir=tmp_path, pubmed={"base_url": replay.eutils_url, "requests_per_second": 100},
                        serve={"key_failures": 10_000})
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "lib", "librarian")
        cur.add_user("ada", "rita", "reader")
        keys = {name: cur.create_key("ada", name)[1] for name in ("ada", "lib", "rita")}
        app = FastAPI()
        app.include_router(create_router(settings, catalog=catalog, evidence=None))
        with TestClient(app) as client:
            yield client, cur, keys


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# (method, path, json body, role needed); in an order in which each accepted call succeeds.
def write_calls(spare_key_id: str) -> list[tuple[str, str, dict | None, str]]:
    return [
        ("POST", "/curation/searches", {"name": "mel", "source": "pubmed", "query": "all[sb]",
                                        "backfill_from": "2026-11-02"}, "librarian"),
        ("PATCH", "/curation/searches/mel", {"query": "melanoma", "owner": "lib"}, "librarian"),
        ("POST", "/curation/searches/mel/preview", {"until": "2026-11-27"}, "librarian"),
        ("POST", "/curation/preview", {"source": "pubmed", "query": "all[sb]", "since": "2026-11-02",
                                       "until": "2026-11-27"}, "librarian"),
        ("DELETE", "/curation/searches/mel", None, "librarian"),
        ("POST", "/curation/rules", {"action": "exclude", "field": "publication_type", "value": "Editorial",
                                     "reason": "opinion"}, "librarian"),
        ("PATCH", "/curation/rules/1", {"reason": "opinion, not evidence"}, "librarian"),
        ("POST", "/curation/decisions", {"record_ids": [NEJM], "action": "approve"}, "librarian"),
        ("POST", f"/curation/records/{NEJM}/pins", {"topic": "melanoma"}, "librarian"),
        ("DELETE", f"/curation/records/{NEJM}/pins/melanoma", None, "librarian"),
        ("POST", f"/curation/records/{NEJM}/tags", {"tag": "braf"}, "librarian"),
        ("DELETE", f"/curation/records/{NEJM}/tags/braf", None, "librarian"),
        ("POST", f"/curation/records/{NEJM}/notes", {"text": "pivotal"}, "librarian"),
        ("POST", "/curation/import", {"text": "90000011", "action": "exclude", "reason": "test"}, "librarian"),
        ("POST", "/curation/users", {"name": "newbie", "role": "reader"}, "admin"),
        ("PATCH", "/curation/users/newbie", {"role": "librarian"}, "admin"),
        ("POST", "/curation/users/newbie/keys", {"label": "x"}, "admin"),
        ("DELETE", f"/curation/keys/{spare_key_id}", None, "admin"),
    ]


def test_every_write_route_refuses_missing_wrong_and_low_keys_and_accepts_the_right_one(
        env, caplog: pytest.LogCaptureFixture) -> None:
    client, cur, keys = env
    caplog.set_level(logging.DEBUG)
    spare_id, spare = cur.create_key("ada", "rita")
    calls = write_calls(spare_id)
    routes = {(m.upper(), path) for path, ops in client.app.openapi()["paths"].items() for m in ops
              if path.startswith("/curation") and m in {"post", "patch", "delete", "put"}}
    templated = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in routes}
    covered = {(m, re.sub(r"(?<=/)(mel|1|newbie|melanoma|braf|pubmed:\d+|[0-9a-f]{8})(?=/|$)", "{}", p))
               for m, p, _, _ in calls}
    assert templated == covered, f"write routes without an access test: {templated - covered}"
    wrong = keys["lib"][:-4] + "AAAA"
    responses = []
    for method, path, body, role in calls:
        for headers, status in (({}, 401), (auth(wrong), 401), (auth("not-a-key"), 401),
                                (auth(keys["rita"]), 403)):
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == status, (method, path, headers, r.text)
            responses.append(r)
        if role == "admin":
            r = client.request(method, path, json=body, headers=auth(keys["lib"]))
            assert r.status_code == 403, (method, path, r.text)
        r = client.request(method, path, json=body, headers={"X-API-Key": keys["ada" if role == "admin" else "lib"]})
        assert r.status_code in (200, 201), (method, path, r.text)
        responses.append(r)
    # What the accepted calls did, in the audit log under the key's user.
    actions = [e["action"] for e in cur.audit_log(limit=None, ascending=True) if e["actor"] in ("lib", "ada")]
    assert {"search.add", "search.update", "search.remove", "rule.add", "rule.update", "record.approve",
            "record.pin", "record.unpin", "record.tag", "record.untag", "record.note", "record.exclude",
            "user.add", "user.update", "key.create", "key.revoke"} <= set(actions)
    assert cur.is_excluded(HOSTILE) and not cur.is_excluded(NEJM)
    # Keys are never logged or returned (only the one response that creates a key carries it, once).
    created = [r for r in responses if r.request.url.path.endswith("/keys") and r.status_code == 201]
    assert len(created) == 1 and created[0].json()["key"].startswith("olk_")
    secrets = [*keys.values(), spare, wrong, created[0].json()["key"]]
    for r in responses:
        if r is created[0]:
            continue
        assert not any(s in r.text or s in str(r.headers) for s in secrets), r.request.url
    logged = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records)
    assert not any(s in logged for s in secrets)
    assert "olk_" not in cur.export_audit("jsonl")


def test_read_routes_for_readers_and_librarian_views(env) -> None:
    client, cur, keys = env
    for path in ("/curation/me", "/curation/searches", "/curation/rules", "/curation/pins", "/curation/export"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=auth(keys["rita"])).status_code == 200, path
    for path in ("/curation/queue", f"/curation/records/{NEJM}", "/curation/exclusions", "/curation/audit",
                 "/curation/audit/export"):
        assert client.get(path, headers=auth(keys["rita"])).status_code == 403, path
        assert client.get(path, headers=auth(keys["lib"])).status_code == 200, path
    assert client.get("/curation/users", headers=auth(keys["lib"])).status_code == 403
    assert client.get("/curation/users", headers=auth(keys["ada"])).status_code == 200
    assert client.get("/curation/export?status=excluded", headers=auth(keys["rita"])).status_code == 403
    cur.exclude("lib", [HOSTILE], "test")
    cur.approve("lib", [NEJM, HOSTILE.replace("90000011", "1")])
    r = client.get("/curation/export?format=ris", headers=auth(keys["rita"]))
    assert r.status_code == 200 and "AN  - 22663011" in r.text and "90000011" not in r.text
    assert r.headers["content-type"].startswith("application/x-research-info-systems")
    r = client.get("/curation/export?format=csljson", headers=auth(keys["rita"]))
    assert r.status_code == 200 and 'filename="oncolit-approved.json"' in r.headers["content-disposition"]
    assert "22663011" in {item.get("PMID") for item in r.json()}
    r = client.get("/curation/export?format=bibtex", headers=auth(keys["rita"]))
    assert r.status_code == 200 and r.text.lstrip().startswith("@") and "oncolit-approved.bib" in \
        r.headers["content-disposition"]
    body = client.get("/curation/queue", headers=auth(keys["lib"])).json()
    assert [i["record_id"] for i in body["items"]] == ["ctgov:NCT02576665"]
    assert client.get("/curation/exclusions", headers=auth(keys["lib"])).json() == {HOSTILE: "test"}
    r = client.post("/curation/decisions", json={"record_ids": [NEJM], "action": "exclude"},
                    headers=auth(keys["lib"]))
    assert r.status_code == 400 and "reason" in r.json()["detail"]
    assert client.get("/curation/records/pubmed:1", headers=auth(keys["lib"])).status_code == 404


def _login(client: TestClient, key: str):
    """As a browser does: load the login page (its pre-session cookie and form token), then post the form."""
    page = client.get("/librarian/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/librarian/login", data={"key": key, "next": "/librarian/queue", "csrf": token},
                       follow_redirects=False)


def test_pages_need_a_librarian_session_and_forms_need_their_token(env) -> None:
    client, cur, keys = env
    r = client.get("/librarian/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/librarian/login")
    assert _login(client, "olk_00000000_" + "x" * 43).status_code == 401
    assert _login(client, keys["rita"]).status_code == 403
    r = _login(client, keys["lib"])
    assert r.status_code == 303 and r.headers["location"] == "/librarian/queue"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and keys["lib"] not in cookie
    page = client.get("/librarian/queue")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    r = client.post("/librarian/queue/bulk", data={"record_id": [NEJM], "action": "approve"})
    assert r.status_code == 403 and not cur.verdict(NEJM).decision, "a form without its token is refused"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/librarian/queue/bulk", data={"csrf": csrf, "record_id": [NEJM], "action": "approve",
                                                   "return": "/librarian/queue"})
    assert r.status_code == 200 and "Approved 1 record(s)." in r.text
    assert cur.verdict(NEJM).decision == "approved"
    assert client.get("/librarian/users").status_code == 403, "admins only"
    for path in ("/librarian/sources", "/librarian/rules", "/librarian/audit", "/librarian/transfer",
                 f"/librarian/records/{NEJM}", "/librarian/export?format=csv"):
        assert client.get(path).status_code == 200, path
    key_id = cur.keys("lib")[0]["key_id"]
    cur.revoke_key("ada", key_id)
    assert client.get("/librarian/queue", follow_redirects=False).status_code == 303, "revoking ends sessions"


def test_record_text_is_escaped_in_html(env) -> None:
    client, cur, keys = env
    cur.note("lib", HOSTILE, '<img src=x onerror="alert(2)">')
    cur.tag("lib", [HOSTILE], "<b>t</b>")
    _login(client, keys["lib"])
    for path in (f"/librarian/records/{HOSTILE}", "/librarian/queue", "/librarian/audit"):
        html = client.get(path).text
        assert "<script>alert(1)</script>" not in html and "<img src=x" not in html, path
        assert "<b>t</b>" not in html and "<b>Bold</b>" not in html, path
    html = client.get(f"/librarian/records/{HOSTILE}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Trial" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html


def test_sources_page_keeps_the_watermark_unless_the_query_changes(env) -> None:
    import datetime as dt

    client, cur, keys = env
    _login(client, keys["lib"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/librarian/sources").text).group(1)
    r = client.post("/librarian/sources", data={
        "csrf": csrf, "do": "add", "name": "trials", "source": "ctgov", "query": "melanoma",
        "params": "phase=PHASE2,PHASE3\nterm=BRAF", "owner": "lib", "schedule": "", "backfill_from": "2026-01-01"})
    assert r.status_code == 200 and "Saved search added." in r.text
    search = cur.catalog.get_search("trials")
    assert search["params"] == {"phase": ["PHASE2", "PHASE3"], "term": "BRAF"}
    assert search["watermark"] == dt.date(2026, 1, 1)
    form = {"csrf": csrf, "query": "melanoma", "params": "phase=PHASE2,PHASE3\nterm=BRAF", "owner": "rita",
            "schedule": "0 5 * * 1", "backfill_from": ""}
    client.post("/librarian/sources/trials", data=form)
    search = cur.catalog.get_search("trials")
    assert (search["owner"], search["schedule"], search["watermark"]) == ("rita", "0 5 * * 1", dt.date(2026, 1, 1))
    client.post("/librarian/sources/trials", data={**form, "query": "uveal melanoma"})
    assert cur.catalog.get_search("trials")["watermark"] == dt.date.today()
    client.post("/librarian/sources/trials", data={"csrf": csrf, "active": "no"})
    assert cur.catalog.get_search("trials")["active"] is False
    assert [e["action"] for e in cur.audit_log(entity="search", entity_id="trials")] == [
        "search.pause", "search.update", "search.update", "search.add"]
    r = client.post("/librarian/sources", data={"csrf": csrf, "do": "add", "name": "bad", "source": "pubmed",
                                                "query": "x", "params": "", "schedule": "whenever"})
    assert r.status_code == 400 and "invalid cron expression" in r.text
    cur.add_search("lib", "pm", "pubmed", "all[sb]", backfill_from=dt.date(2026, 11, 2))
    r = client.post("/librarian/sources/pm/preview", data={"csrf": csrf})
    assert r.status_code == 200
    assert re.search(r"Preview of <strong>pm</strong>: \d+ records? for 2026-11-02", r.text), r.text


def test_rules_import_and_export_pages(env) -> None:
    client, cur, keys = env
    _login(client, keys["lib"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/librarian/rules").text).group(1)
    rule = {"csrf": csrf, "action": "exclude", "field": "journal", "value": "0028-4793", "reason": ""}
    r = client.post("/librarian/rules", data=rule)
    assert r.status_code == 400 and "needs a reason" in r.text and not cur.rules()
    r = client.post("/librarian/rules", data={**rule, "reason": "journal under review"})
    assert "Rule added." in r.text and cur.is_excluded(NEJM)
    client.post("/librarian/rules/1", data={"csrf": csrf, "active": "no"})
    assert not cur.rules()[0].active and not cur.is_excluded(NEJM)
    r = client.post("/librarian/import", data={"csrf": csrf, "text": "22663011\nNCT02576665 bogus",
                                               "action": "approve", "reason": ""})
    assert r.status_code == 200 and "Approved 2 records." in r.text and "bogus" in r.text
    r = client.get("/librarian/export?format=nbib")
    assert r.status_code == 200 and r.text.startswith("PMID- 22663011")
    assert 'filename="oncolit-approved.nbib"' in r.headers["content-disposition"]
    r = client.get("/librarian/export?format=bibtex")
    assert r.status_code == 200 and 'filename="oncolit-approved.bib"' in r.headers["content-disposition"]
    assert 'value="csljson"' in client.get("/librarian/transfer").text
