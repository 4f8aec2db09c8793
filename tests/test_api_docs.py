"""/docs and /redoc offline (their assets served by this server), the API-key security schemes in OpenAPI,
and `serve.require_key` for /ask and /search, both ways (issue 16, "Pages and API")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from ingest.catalog import Catalog
from ingest.curation import Curation
from oncolit.api import create_app
from oncolit.settings import Settings
from synthesis.llm.none_backend import NoneLLM

ASSET_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|(?:url|spec-url)\s*[:=]\s*['"]([^'"]+)['"]""")


def light(data_dir: Path, **serve: object) -> Settings:
    """An app that starts in seconds: the numpy-only e5 embedder, no reranker, no findings models."""
    return Settings(data_dir=data_dir, embedding={"backend": "e5"}, search={"reranker": "none"},
                    findings={"models": "none"}, serve=serve)


def urls_in(html: str) -> list[str]:
    return [a or b for a, b in ASSET_URL.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_everything_from_this_server(tmp_path: Path, page: str) -> None:
    client = TestClient(create_app(light(tmp_path)))  # no lifespan: the docs need no catalog or index
    response = client.get(page)
    assert response.status_code == 200
    urls = urls_in(response.text)
    assert "/openapi.json" in urls and any(u.endswith(".js") for u in urls), urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"{page} loads {url} from another host"
        fetched = client.get(url)
        assert fetched.status_code == 200 and fetched.content, url
    assert "cdn.jsdelivr" not in response.text and "fonts.googleapis" not in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "img-src 'self' data:" in csp and "http" not in csp
    js = [u for u in urls if u.endswith(".js")]
    assert all(client.get(u).headers["content-type"].startswith("text/javascript") for u in js)
    assert len(client.get(js[0]).content) > 500_000  # the real bundle, not an empty stand-in


def test_unknown_docs_asset_is_404(tmp_path: Path) -> None:
    client = TestClient(create_app(light(tmp_path)))
    assert client.get("/docs/assets/../settings.py").status_code == 404
    assert client.get("/docs/assets/evil.js").status_code == 404


@pytest.mark.parametrize("required", [False, True])
def test_openapi_declares_how_keys_travel(tmp_path: Path, required: bool) -> None:
    spec = TestClient(create_app(light(tmp_path, require_key=required))).get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    wanted = [{"bearer": []}, {"apiKey": []}]
    paths = spec["paths"]
    assert paths["/curation/queue"]["get"]["security"] == wanted
    assert paths["/local/search"]["post"]["security"] == wanted
    assert "security" not in paths["/healthz"]["get"]
    for path, method in (("/ask", "post"), ("/search", "get")):
        assert (paths[path][method].get("security") == wanted) is required, (path, required)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = light(tmp_path, require_key=True)
    with Catalog(settings.resolved_catalog_url) as catalog:
        cur = Curation(catalog)
        cur.add_user("boot", "ada", "admin")
        cur.add_user("ada", "rita", "reader")
        key = cur.create_key("ada", "rita")[1]
        cur.add_user("ada", "gone", "reader")
        revoked_id, revoked = cur.create_key("ada", "gone")
        cur.revoke_key("ada", revoked_id)
    with TestClient(create_app(settings, llm=NoneLLM())) as client:
        yield client, {"key": key, "revoked": revoked}


def test_required_key_guards_search_and_ask(keyed: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = keyed
    question = {"question": "Does trametinib improve survival?"}
    for call in (lambda h: client.get("/search", params={"q": "melanoma"}, headers=h),
                 lambda h: client.post("/ask", json=question, headers=h)):
        missing = call({})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "serve.require_key" in missing.json()["detail"]
        assert call({"Authorization": f"Bearer {keys['revoked']}"}).status_code == 401
        assert call({"Authorization": "Bearer not-a-key"}).status_code == 401
        assert call({"Authorization": f"Bearer {keys['key']}"}).status_code == 200
        assert call({"X-API-Key": keys["key"]}).status_code == 200
    assert client.get("/healthz").status_code == 200  # liveness never needs a key
    assert client.get("/search", params={"q": "melanoma"}, headers={"X-API-Key": keys["key"]}).json()["results"] == []


def test_without_the_setting_anyone_may_search(tmp_path: Path) -> None:
    with TestClient(create_app(light(tmp_path), llm=NoneLLM())) as client:
        response = client.get("/search", params={"q": "melanoma"})
        assert response.status_code == 200 and response.json() == {"query": "melanoma", "results": []}
        assert client.post("/ask", json={"question": "Does trametinib improve survival?"}).status_code == 200
