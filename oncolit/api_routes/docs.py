"""/docs (Swagger UI) and /redoc (ReDoc) from assets served by this server, so both work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (jsdelivr) and fonts from Google: on a machine
without internet, or behind a strict proxy, they are blank. The same files ship in the `fastapi-offline`
wheel (a dependency; only its `static/` folder is used, not its app class). They are served under
`/docs/assets/…`, read once from the installed package, with a long cache lifetime.
"""

from __future__ import annotations

from functools import cache
from importlib import resources as importlib_resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from ingest.errors import ConfigError

ASSETS = "/docs/assets"
# Nothing but this server: ReDoc's bundle would otherwise fetch its footer logo from cdn.redoc.ly. Inline
# script is FastAPI's page bootstrap (the pages carry no user data); ReDoc runs its search in a blob: worker.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' blob:; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
MEDIA = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
         "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}


@cache
def asset_dir() -> Path:
    """The installed bundle's folder (checked once: every asset the pages name must be there)."""
    try:
        folder = Path(str(importlib_resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        raise ConfigError("the API docs need the `fastapi-offline` package (their offline assets): "
                                "`pip install fastapi-offline`, or reinstall oncolit") from None
    missing = [name for name in MEDIA if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"{folder} lacks {', '.join(missing)}: reinstall `fastapi-offline`")
    return folder


def local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CSP
    return page


def router(app: FastAPI) -> APIRouter:
    """The docs routes for `app` (whose `openapi_url` they load); build the app with `docs_url=None,
    redoc_url=None` so FastAPI's CDN pages are not registered too."""
    docs = APIRouter(include_in_schema=False)
    openapi_url = app.openapi_url or "/openapi.json"
    redirect = "/docs/oauth2-redirect"

    @docs.get("/docs", response_class=HTMLResponse)
    def swagger() -> HTMLResponse:
        asset_dir()  # a clear error, not a blank page, when the bundle is missing
        return local_only(get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
                                   swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS}/favicon.png", oauth2_redirect_url=redirect))

    @docs.get(redirect, response_class=HTMLResponse)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @docs.get("/redoc", response_class=HTMLResponse)
    def redoc() -> HTMLResponse:
        asset_dir()
        return local_only(get_redoc_html(openapi_url=openapi_url, title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS}/favicon.png", with_google_fonts=False))

    @docs.get(ASSETS + "/{name}")
    def asset(name: str) -> FileResponse:
        if name not in MEDIA:
            raise HTTPException(404, f"no docs asset {name!r}")
        return FileResponse(asset_dir() / name, media_type=MEDIA[name],
                            headers={"Cache-Control": "public, max-age=86400"})

    return docs
