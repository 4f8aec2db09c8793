"""The HTTP cases of issue 18's probe, each reproducing what failed before, through the whole app
(`oncolit.api.create_app` over a real catalog): a duplicate saved-search name (was 500 with raw JSON on the
page), names that break URLs or markup, login without CSRF protection, unthrottled key checks (one scrypt
each), disabled users whose keys came back on re-enabling, unbounded request bodies, and API JSON without
`nosniff` / `no-store`. Every case is counted on the reliability scoreboard (class "http")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ingest.catalog import Catalog
from ingest.curation import Curation, CurationError, access
from ingest.pubmed_xml import parse_pubmed_xml
from oncolit.api import create_app
from oncolit.settings import Settings
from tests.reliability.tally import TALLY

BAD_NAMES = ["a/b?c#d", "<script>alert(1)</script>", "bell\x07", "zero\u200bwidth", "100%", " padded", "x" * 101]


def check(case: str, ok: bool, detail: str = "") -> None:
    TALLY.record("http", case, held=ok)
    assert ok, f"{case}: {detail}"


@pytest.fixture(scope="module")
def site(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Curation, dict]]:
    """The whole app (API + curation routes + pages) over a catalog with one record, an admin and a librarian."""
    data = tmp_path_factory.mktemp("http") / "data"
    settings = Settings(data_dir=data, llm={"backend": "none"}, findings={"models": "none"},
                        serve={"max_body_bytes": 1_000_000, "key_failures": 5})
    settings.ensure_data_dir()
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "lib", "librarian")
        keys = {name: cur.create_key("ada", name)[1] for name in ("ada", "lib")}
        with TestClient(create_app(settings)) as client:
            yield client, cur, keys


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, key: str, **headers: str):
    page = client.get("/librarian/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post("/librarian/login", data={"key": key, "next": "/librarian/sources", "csrf": token},
                       headers=headers, follow_redirects=False)


def test_duplicate_saved_search_name_is_409_and_a_readable_page(site) -> None:
    client, cur, keys = site
    body = {"name": "dup", "source": "pubmed", "query": "melanoma"}
    assert client.post("/curation/searches", json=body, headers=auth(keys["lib"])).status_code == 201
    r = client.post("/curation/searches", json=body, headers=auth(keys["lib"]))
    check("duplicate search name over JSON -> 409", r.status_code == 409 and "already exists" in r.json()["detail"],
          r.text)
    assert login(client, keys["lib"]).status_code == 303
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/librarian/sources").text).group(1)
    r = client.post("/librarian/sources", data={"csrf": csrf, "do": "add", "name": "dup", "source": "pubmed",
                                                "query": "melanoma", "params": "", "schedule": ""})
    check("duplicate search name on the page -> readable message",
          r.status_code == 409 and r.headers["content-type"].startswith("text/html")
          and "already exists" in r.text and '"detail"' not in r.text, r.text[:300])


@pytest.mark.parametrize("name", BAD_NAMES)
def test_saved_search_names_are_validated_over_http(site, name: str) -> None:
    client, cur, keys = site
    r = client.post("/curation/searches", json={"name": name, "source": "pubmed", "query": "melanoma"},
                    headers=auth(keys["lib"]))
    created = any(s["name"] == name for s in cur.searches())
    check(f"bad search name {name[:12]!r} over HTTP -> 4xx", r.status_code in (400, 422) and not created, r.text)


def test_saved_search_names_are_validated_by_the_cli(site, monkeypatch: pytest.MonkeyPatch) -> None:
    from oncolit.cli import curate_cmd, searches_cmd
    from oncolit.cli.common import get_settings

    client, cur, keys = site
    monkeypatch.setenv("ONCOLIT_DATA_DIR", str(Path(cur.catalog.engine.url.database).parent))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        for app, args in ((searches_cmd.app, ["add", "a/b?c#d", "--query", "melanoma"]),
                          (curate_cmd.app, ["sources", "add", "<b>x</b>", "--query", "melanoma"])):
            result = runner.invoke(app, args, env={"ONCOLIT_USER": "lib"})
            check(f"bad search name via `{' '.join(args[:2])}` -> refused",
                  isinstance(result.exception, CurationError) and "not a valid saved-search name"
                  in str(result.exception) and args[1] not in {s["name"] for s in cur.searches()},
                  f"{result.output} {result.exception!r}")
    finally:
        get_settings.cache_clear()


def test_login_form_is_protected_against_csrf(site) -> None:
    client, cur, keys = site
    client.cookies.clear()
    r = client.post("/librarian/login", data={"key": keys["lib"], "next": "/librarian/queue"},
                    follow_redirects=False)
    check("login POST without the form token -> 403", r.status_code == 403 and "oncolit_session" not in
          r.headers.get("set-cookie", ""), r.text[:200])
    r = login(client, keys["lib"], origin="https://evil.example")
    check("login POST from another origin -> 403", r.status_code == 403 and "oncolit_session" not in
          r.headers.get("set-cookie", ""), r.text[:200])
    r = login(client, keys["lib"], origin="http://testserver")
    check("login POST from this origin with its token -> session", r.status_code == 303
          and "oncolit_session" in r.headers["set-cookie"], r.text[:200])


def test_failed_key_checks_are_throttled_and_good_ones_cached(site, monkeypatch: pytest.MonkeyPatch) -> None:
    client, cur, keys = site
    scrypts = []
    real = access.hash_token
    monkeypatch.setattr(access, "hash_token", lambda token, salt: scrypts.append(1) or real(token, salt))
    other = TestClient(client.app, client=("203.0.113.9", 5000))  # same running app, another address
    other.portal = client.portal  # type: ignore[attr-defined]
    wrong = keys["lib"][:-4] + "AAAA"
    statuses = [other.get("/curation/me", headers=auth(wrong)).status_code for _ in range(5)]
    blocked = other.get("/curation/me", headers=auth(keys["lib"]))
    check("6th key check after 5 failures -> 429 with Retry-After, no scrypt",
          statuses == [401] * 5 and blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
          and len(scrypts) == 5, f"{statuses} {blocked.status_code} scrypts={len(scrypts)}")
    page = other.get("/librarian/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = other.post("/librarian/login", data={"key": keys["lib"], "csrf": token}, follow_redirects=False)
    check("login while throttled -> 429 page", r.status_code == 429 and "retry-after" in r.headers
          and "text/html" in r.headers["content-type"], r.text[:200])
    scrypts.clear()
    ok = [client.get("/curation/me", headers=auth(keys["ada"])).status_code for _ in range(5)]
    check("a good key is checked by scrypt once, then cached", ok == [200] * 5 and len(scrypts) <= 1,
          f"{ok} scrypts={len(scrypts)}")


def test_disabling_a_user_revokes_their_keys_for_good(site) -> None:
    client, cur, keys = site
    cur.add_user("ada", "temp", "librarian")
    _key_id, token = cur.create_key("ada", "temp")
    assert client.get("/curation/me", headers=auth(token)).status_code == 200
    assert client.patch("/curation/users/temp", json={"active": False}, headers=auth(keys["ada"])).status_code == 200
    disabled = client.get("/curation/me", headers=auth(token)).status_code
    assert client.patch("/curation/users/temp", json={"active": True}, headers=auth(keys["ada"])).status_code == 200
    revived = client.get("/curation/me", headers=auth(token)).status_code
    check("disabled user's key refused, and not revived by re-enabling", disabled == 401 and revived == 401
          and all(k["revoked_at"] for k in cur.keys("temp")), f"{disabled} {revived}")


def test_request_bodies_are_bounded(site) -> None:
    client, cur, keys = site
    big = b'{"question": "' + b"a" * 20_000_000 + b'"}'
    r = client.post("/ask", content=big, headers={"content-type": "application/json"})
    check("20 MB /ask body -> 413", r.status_code == 413, r.text[:200])

    def chunks() -> Iterator[bytes]:
        yield b'{"question": "'
        for _ in range(200):
            yield b"a" * 100_000
        yield b'"}'

    r = client.post("/ask", content=chunks(), headers={"content-type": "application/json"})
    check("20 MB streamed (chunked) /ask body -> 413", r.status_code == 413, r.text[:200])
    r = client.post("/curation/searches", content=chunks(), headers={**auth(keys["lib"]),
                                                                   "content-type": "application/json"})
    check("20 MB streamed curation body -> 413", r.status_code == 413, r.text[:200])


def test_api_json_is_nosniff_and_no_store(site) -> None:
    client, cur, keys = site
    responses = {
        "GET /healthz": client.get("/healthz"),
        "GET /records/{id}": client.get("/records/pubmed:22663011"),
        "GET /records/missing (404)": client.get("/records/pubmed:1"),
        "GET /curation/me": client.get("/curation/me", headers=auth(keys["lib"])),
        "POST /curation/users/{name}/keys (a new key)": client.post(
            "/curation/users/lib/keys", json={"label": "t"}, headers=auth(keys["ada"])),
    }
    for case, r in responses.items():
        check(f"{case} carries nosniff and no-store", r.headers.get("x-content-type-options") == "nosniff"
              and r.headers.get("cache-control") == "no-store", f"{r.status_code} {dict(r.headers)}")
    assert responses["POST /curation/users/{name}/keys (a new key)"].json()["key"].startswith("olk_")


def test_health_and_record_reads_answer_while_every_worker_is_busy(shared_data: Path, tmp_path: Path) -> None:
    """Was: one thread ran every route, so /healthz waited behind each search and ask (5-10 s in a burst).
    Here the only search worker is held busy; health and record reads must still answer, one search may
    wait (`max_queued=0` beyond the running one), the next is refused with 503 instead of queueing."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    settings = Settings(data_dir=tmp_path / "data", llm={"backend": "none"}, findings={"models": "none"},
                        serve={"workers": 1, "max_queued": 0})
    settings.ensure_data_dir()
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    with Catalog(settings.resolved_catalog_url) as catalog:
        catalog.ingest_batch(items)
    release = threading.Event()
    with TestClient(create_app(settings)) as client:
        pool = client.app.state.worker  # type: ignore[attr-defined]
        pool.executor.submit(release.wait, 60)  # the one worker is now taken
        try:
            started = time.monotonic()
            health = client.get("/healthz")
            record = client.get("/records/pubmed:22663011")
            took = time.monotonic() - started
            check("healthz and a record read answer while every worker is busy",
                  health.status_code == 200 and record.status_code == 200 and took < 10,
                  f"{health.status_code} {record.status_code} {took:.1f}s")
            with ThreadPoolExecutor(1) as side:
                waiting = side.submit(client.get, "/search", params={"q": "melanoma"})
                deadline = time.monotonic() + 20
                while pool.in_flight < 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
                refused = client.get("/search", params={"q": "trametinib"})
                check("a search past serve.max_queued -> 503 with Retry-After",
                      refused.status_code == 503 and refused.headers.get("retry-after") == "1", refused.text)
                release.set()
                check("the waiting search is served once a worker is free",
                      waiting.result(timeout=120).status_code == 200)
        finally:
            release.set()
