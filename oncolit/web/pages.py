"""Server-rendered librarian pages under /librarian: log in with a key, then the queue, a record with its
decisions and links, sources, rules, the audit log, import/export, and (admins) people and keys.

Plain HTML forms (POST, then redirect), so every page works by keyboard and without JavaScript; a
small script only adds "select all" and confirmations. Jinja2 autoescapes everything, and the
Content-Security-Policy allows no inline script: record text is data, never markup.
A session is a random cookie (HttpOnly, SameSite=Strict); each form carries a token bound to it. The login
form, before any session, carries one bound to a pre-session cookie, and a POST whose Origin (or Referer)
names another host is refused.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import math
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ingest.curation import FIELDS, ROLES, CurationError, User
from ingest.curation.access import csrf_token
from ingest.curation.exports import MEDIA_TYPES, SUFFIXES, url_of
from ingest.curation.relevance import MIN_PER_CLASS
from ingest.errors import AlreadyExists, RecordNotFound, SourceError
from oncolit.http_errors import http_status
from oncolit.web import subscribers_page
from oncolit.web.deps import PAGES, SESSION_COOKIE, WebState
from oncolit.web.record_evidence import for_page

HERE = Path(__file__).resolve().parent
STATIC = {"curation.css": "text/css", "curation.js": "text/javascript"}
PAGE_SIZE = 50
LOGIN_COOKIE = "oncolit_login"  # the pre-session token of the login form (there is no session to bind to yet)
MAX_FORM_BYTES = 2_000_000
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = [("/queue", "Queue"), ("/sources", "Sources"), ("/rules", "Rules"), ("/audit", "Audit log"),
       ("/transfer", "Import / export"), ("/subscribers", "Subscribers")]
DONE = {
    "approve": "Approved {n} record(s).", "exclude": "Excluded {n} record(s).", "reset": "Undid {n} decision(s).",
    "tag": "Tagged {n} record(s).", "untag": "Removed the tag.", "pin": "Pinned.", "unpin": "Unpinned.",
    "note": "Note added.", "search-add": "Saved search added.", "search-update": "Saved search updated.",
    "search-remove": "Saved search removed; its records stay in the catalog.", "rule-add": "Rule added.",
    "rule-update": "Rule updated.", "user-add": "User added.", "user-update": "User updated.",
    "key-revoke": "Key revoked.", "logout": "Logged out.", "nothing": "Select at least one record first.",
}
SORTS = [("newest", "newest first"), ("published", "publication date"), ("relevance", "predicted relevance"),
         ("evidence", "evidence level")]


def _pretty(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, indent=1, ensure_ascii=False, sort_keys=True)


ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
ENV.filters["pretty"] = _pretty


async def form_data(request: Request) -> dict[str, list[str]]:
    """The urlencoded body of a form POST (bounded)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _one(form: dict[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0].strip() if values else default


def params_text(params: dict[str, Any] | None) -> str:
    """Source parameters as the form shows them: KEY=VALUE per line, lists comma-separated."""
    return "\n".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in (params or {}).items())


ENV.filters["params_text"] = params_text


def _params(text: str) -> dict[str, Any]:
    """The form's parameters back: a value with commas is a list (as CT.gov multi-valued filters are)."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise CurationError(f"parameters are KEY=VALUE, one per line; not {line.strip()!r}")
        value = value.strip()
        out[key.strip()] = [v.strip() for v in value.split(",") if v.strip()] if "," in value else value
    return out


def _same_text(a: str, b: str) -> bool:
    return [line.strip() for line in a.strip().splitlines()] == [line.strip() for line in b.strip().splitlines()]


def _day(text: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CurationError(f"{text!r} is not a date like 2026-11-27") from None


def same_origin(request: Request) -> bool:
    """A browser names the page a POST came from (`Origin`, else `Referer`); one from another host is refused.
    A request naming neither (not a browser form) passes to the token check."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    if origin == "null":  # a sandboxed or privacy-stripped origin: cannot be ours
        return False
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def why_unscored(cur: Any) -> str:
    """Why the queue's relevance column is empty: the score is learnt from librarians' decisions
    (`ingest.curation.relevance`) and needs some of each kind first."""
    approved, excluded = len(cur.curated(status="approved")), len(cur.curated(status="excluded"))
    return (f"Not scored yet: relevance is learnt from your decisions and needs at least {MIN_PER_CLASS} approved "
            f"and {MIN_PER_CLASS} excluded records (so far {approved} approved, {excluded} excluded).")


def _safe_next(target: str) -> str:
    """Only local librarian pages are followed after login (no open redirect)."""
    return target if target.startswith(PAGES + "/") and not target.startswith("//") and "\\" not in target \
        else f"{PAGES}/queue"


def build(state: WebState) -> APIRouter:
    router = APIRouter(prefix=PAGES, include_in_schema=False, route_class=_PageRoute)

    # ------------------------------------------------------------------ plumbing
    def session(request: Request) -> tuple[User | None, str]:
        cookie = request.cookies.get(SESSION_COOKIE, "")
        return state.curation(request).session_user(cookie), cookie

    def page_user(request: Request, role: str = "librarian") -> tuple[User, str]:
        user, cookie = session(request)
        if user is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise HTTPException(303, "log in first", headers={
                "Location": f"{PAGES}/login?{urlencode({'next': target})}"})
        if not user.can(role):  # type: ignore[arg-type]
            raise _Forbidden(user, cookie, f"This page needs a {role}; you are a {user.role}.")
        return user, cookie

    def check_csrf(cookie: str, form: dict[str, list[str]]) -> None:
        if not hmac.compare_digest(_one(form, "csrf"), csrf_token(cookie)):
            raise HTTPException(403, "the form has expired or did not come from this site; reload the page")

    def render(request: Request, template: str, user: User | None, cookie: str, *, status: int = 200,
               **context: Any) -> HTMLResponse:
        nav = NAV + ([("/users", "People")] if user is not None and user.can("admin") else [])
        done = request.query_params.get("done")
        message = context.pop("message", None) or (
            DONE[done].format(n=request.query_params.get("n", "")) if done in DONE else None)
        html = ENV.get_template(template).render(
            base=PAGES, user=user, csrf=csrf_token(cookie) if cookie else "", nav=nav,
            current=context.pop("current", None), message=message, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def back(path: str, done: str, n: int | None = None) -> RedirectResponse:
        query = {"done": done, **({"n": str(n)} if n is not None else {})}
        sep = "&" if "?" in path else "?"
        return RedirectResponse(f"{path}{sep}{urlencode(query)}", status_code=303)

    def guarded(request: Request, fn: Any, on_error: Any) -> Response:
        """Run a change; a curation, lookup or source error re-renders the page with the message, at the
        status `oncolit.http_errors` gives it (400/403/404/409; 502/503 when a source failed)."""
        try:
            return fn()
        except (CurationError, RecordNotFound, AlreadyExists, SourceError) as exc:
            return on_error(str(exc), http_status(exc)[0])

    # ------------------------------------------------------------------ static, login, logout
    @router.get("/static/{name}")
    def static(name: str) -> FileResponse:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                            headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})

    @router.get("")
    @router.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse(f"{PAGES}/queue", status_code=303)

    def login_form(request: Request, target: str, *, status: int = 200, error: str | None = None,
                   headers: dict[str, str] | None = None) -> HTMLResponse:
        """The login page with a fresh pre-session token: a cookie (SameSite=Strict, so another site's form
        never sends it) and the same value's form token in a hidden field, checked by the POST."""
        pre = secrets.token_urlsafe(32)
        response = render(request, "login.html", None, "", status=status, title="Log in", next=target,
                          error=error, login_csrf=csrf_token(pre))
        response.headers.update(headers or {})
        response.set_cookie(LOGIN_COOKIE, pre, httponly=True, samesite="strict", path=PAGES,
                            secure=request.url.scheme == "https", max_age=3600)
        return response

    @router.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = f"{PAGES}/queue") -> HTMLResponse:
        return login_form(request, _safe_next(next))

    @router.post("/login")
    def login(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        key, target = _one(form, "key"), _safe_next(_one(form, "next"))
        pre = request.cookies.get(LOGIN_COOKIE, "")
        if not same_origin(request) or not pre or not hmac.compare_digest(_one(form, "csrf"), csrf_token(pre)):
            return login_form(request, target, status=403,
                              error="The login form has expired or did not come from this site; try again.")
        cur = state.curation(request)
        try:
            found = state.check_key(request, key)
        except HTTPException as exc:  # 429: too many failed keys from this address
            return login_form(request, target, status=exc.status_code, error=str(exc.detail),
                              headers=dict(exc.headers or {}))
        if found is None:
            return login_form(request, target, status=401, error="That key is not valid (or was revoked).")
        if not found[0].can("librarian"):
            return login_form(request, target, status=403,
                              error="These pages are for librarians; your key is a reader's.")
        opened = cur.open_session(key)
        assert opened is not None
        cookie, _user = opened
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(LOGIN_COOKIE, path=PAGES)
        response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", path=PAGES,
                            secure=request.url.scheme == "https", max_age=12 * 3600)
        return response

    @router.post("/logout")
    def logout(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        _user, cookie = session(request)
        if cookie:
            check_csrf(cookie, form)
            state.curation(request).close_session(cookie)
        response = RedirectResponse(f"{PAGES}/login?done=logout", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PAGES)
        return response

    # ------------------------------------------------------------------ queue
    def queue_view(request: Request, user: User, cookie: str, *, error: str | None = None,
                   status: int = 200) -> HTMLResponse:
        q = request.query_params
        sort = q.get("sort") if q.get("sort") in dict(SORTS) else "newest"
        kind = q.get("kind") if q.get("kind") in ("article", "trial") else None
        try:
            page_no = max(1, int(q.get("page", "1")))
        except ValueError:
            page_no = 1
        text = " ".join(q.get("q", "").split())[:200]
        cur = state.curation(request)
        page = cur.queue(sort=sort, limit=PAGE_SIZE, offset=(page_no - 1) * PAGE_SIZE, kind=kind, text=text or None)
        pages = max(1, math.ceil(page.total / PAGE_SIZE))

        def href(n: int) -> str:
            return f"{PAGES}/queue?" + urlencode({"sort": sort, "kind": kind or "", "q": text, "page": n})

        return render(request, "queue.html", user, cookie, status=status, error=error, title="Curation queue",
                      current="/queue", page=page, sorts=SORTS, kind=kind, page_no=page_no, pages=pages, q=text,
                      unscored=None if page.relevance_trained else why_unscored(cur),
                      prev_href=href(page_no - 1) if page_no > 1 else None,
                      next_href=href(page_no + 1) if page_no < pages else None,
                      return_to=href(page_no))

    @router.get("/queue", response_class=HTMLResponse)
    def queue(request: Request) -> HTMLResponse:
        return queue_view(request, *page_user(request))

    @router.post("/queue/bulk")
    def bulk(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)
        ids, action = form.get("record_id", []), _one(form, "action")
        target = _one(form, "return")
        target = target if target.startswith(f"{PAGES}/queue") else f"{PAGES}/queue"
        cur = state.curation(request)
        if not ids:
            return back(target, "nothing")

        def run() -> Response:
            if action == "approve":
                return back(target, "approve", len(cur.approve(user.name, ids)))
            if action == "exclude":
                return back(target, "exclude", len(cur.exclude(user.name, ids, _one(form, "reason"))))
            if action == "tag":
                return back(target, "tag", len(cur.tag(user.name, ids, _one(form, "tag"))))
            raise CurationError("choose Approve, Exclude or Tag for the selected records")

        return guarded(request, run, lambda msg, code: queue_view(request, user, cookie, error=msg, status=code))

    # ------------------------------------------------------------------ a record
    def record_view(request: Request, user: User, cookie: str, record_id: str, *, error: str | None = None,
                    status: int = 200) -> HTMLResponse:
        cur = state.curation(request)
        try:
            r = cur.record(record_id)
        except (RecordNotFound, CurationError) as exc:
            return render(request, "error.html", user, cookie, status=404, title="No such record", error=str(exc))
        model = cur.catalog.get_record(r["id"]) if r["version"] else None
        return render(request, "record.html", user, cookie, status=status, error=error, title=r["title"] or r["id"],
                      r=r, f=r["fields"] or {}, entries=r["audit"], ev=for_page(request, cur.catalog, r["id"]) if model else None,
                      topics=subscribers_page.topic_names(cur.catalog, cur.pins()),
                      external=url_of(model) if model is not None else "#")

    @router.get("/records/{record_id}", response_class=HTMLResponse)
    def record(record_id: str, request: Request) -> HTMLResponse:
        return record_view(request, *page_user(request), record_id)

    def record_change(record_id: str, request: Request, form: dict[str, list[str]], what: str) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)
        cur = state.curation(request)
        path = f"{PAGES}/records/{record_id}"

        def run() -> Response:
            if what == "decision":
                action = _one(form, "action")
                if action == "approve":
                    cur.approve(user.name, [record_id])
                elif action == "exclude":
                    cur.exclude(user.name, [record_id], _one(form, "reason"))
                elif action == "reset":
                    cur.reset(user.name, [record_id])
                else:
                    raise CurationError(f"unknown decision {action!r}")
                return back(path, action, 1)
            if what == "pin":
                topic, known = _one(form, "topic"), subscribers_page.topic_names(cur.catalog, cur.pins())
                if topic not in known:  # the page offers the topics there are; a pin elsewhere features nowhere
                    raise CurationError(f"{topic!r} is not a subscriber's topic; choose one of: "
                                        f"{', '.join(known) or 'none yet (add a subscriber with topics)'}")
                cur.pin(user.name, record_id, topic)
            elif what == "unpin":
                cur.unpin(user.name, record_id, _one(form, "topic"))
            elif what == "tag":
                cur.tag(user.name, [record_id], _one(form, "tag"))
            elif what == "untag":
                cur.untag(user.name, record_id, _one(form, "tag"))
            elif what == "note":
                cur.note(user.name, record_id, _one(form, "text"))
            return back(path, what, 1)

        return guarded(request, run, lambda msg, code: record_view(request, user, cookie, record_id, error=msg,
                                                                   status=code))

    for what in ("decision", "pin", "unpin", "tag", "untag", "note"):
        def endpoint(record_id: str, request: Request, form: dict[str, list[str]] = Depends(form_data),
                     _what: str = what) -> Response:
            return record_change(record_id, request, form, _what)
        router.add_api_route(f"/records/{{record_id}}/{what}", endpoint, methods=["POST"],
                             name=f"librarian_record_{what}")

    subscribers_page.add_routes(router, state, page_user, render)

    # ------------------------------------------------------------------ sources
    def sources_view(request: Request, user: User, cookie: str, *, error: str | None = None, status: int = 200,
                     preview: dict[str, Any] | None = None) -> HTMLResponse:
        return render(request, "sources.html", user, cookie, status=status, error=error, title="Sources",
                      current="/sources", searches=state.curation(request).searches(), preview=preview)

    @router.get("/sources", response_class=HTMLResponse)
    def sources(request: Request) -> HTMLResponse:
        return sources_view(request, *page_user(request))

    def _preview(request: Request, source_name: str, query: str, params: dict[str, Any],
                 since: dt.date | None, label: str) -> dict[str, Any]:
        from ingest.source import Query, Window
        from oncolit.wiring import open_source
        settings = state.settings_for(request)
        until = dt.date.today()
        start = since or until - dt.timedelta(days=settings.initial_lookback_days)
        with open_source(source_name, settings) as source:
            count = state.curation(request).preview(source, Query(query, params), Window(start, until))
        return {"search": label, "count": count, "window": [start.isoformat(), until.isoformat()]}

    @router.post("/sources")
    def add_source(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)
        cur = state.curation(request)

        def run() -> Response:
            params = _params(_one(form, "params"))
            if _one(form, "do") == "preview":
                result = _preview(request, _one(form, "source"), _one(form, "query"), params,
                                  _day(_one(form, "backfill_from")), "the draft query")
                return sources_view(request, user, cookie, preview=result)
            cur.add_search(user.name, _one(form, "name"), _one(form, "source"), _one(form, "query"), params,
                           schedule=_one(form, "schedule") or None, owner=_one(form, "owner") or None,
                           backfill_from=_day(_one(form, "backfill_from")))
            return back(f"{PAGES}/sources", "search-add")

        return guarded(request, run, lambda msg, code: sources_view(request, user, cookie, error=msg, status=code))

    @router.post("/sources/{name}")
    def update_source(name: str, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)
        cur = state.curation(request)

        def run() -> Response:
            kwargs: dict[str, Any] = {}
            if "active" in form:
                kwargs["active"] = _one(form, "active") == "yes"
            if "query" in form:
                current = cur.catalog.get_search(name)
                kwargs |= {"query": _one(form, "query"), "owner": _one(form, "owner") or None,
                           "schedule": _one(form, "schedule") or None,
                           "backfill_from": _day(_one(form, "backfill_from"))}
                if not _same_text(_one(form, "params"), params_text(current["params"])):
                    kwargs["params"] = _params(_one(form, "params"))
            cur.update_search(user.name, name, **kwargs)
            return back(f"{PAGES}/sources", "search-update")

        return guarded(request, run, lambda msg, code: sources_view(request, user, cookie, error=msg, status=code))

    @router.post("/sources/{name}/remove")
    def remove_source(name: str, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)

        def run() -> Response:
            state.curation(request).remove_search(user.name, name)
            return back(f"{PAGES}/sources", "search-remove")

        return guarded(request, run, lambda msg, code: sources_view(request, user, cookie, error=msg, status=code))

    @router.post("/sources/{name}/preview")
    def preview_source(name: str, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)
        cur = state.curation(request)

        def run() -> Response:
            from oncolit.wiring import open_source
            settings = state.settings_for(request)
            search = cur.catalog.get_search(name)
            with open_source(search["source"], settings) as source:
                result = cur.preview_search(source, name, initial_lookback_days=settings.initial_lookback_days)
            return sources_view(request, user, cookie, preview=result)

        return guarded(request, run, lambda msg, code: sources_view(request, user, cookie, error=msg, status=code))

    # ------------------------------------------------------------------ rules
    def rules_view(request: Request, user: User, cookie: str, *, error: str | None = None,
                   status: int = 200) -> HTMLResponse:
        return render(request, "rules.html", user, cookie, status=status, error=error, title="Rules",
                      current="/rules", rules=state.curation(request).rules(), fields=FIELDS)

    @router.get("/rules", response_class=HTMLResponse)
    def rules(request: Request) -> HTMLResponse:
        return rules_view(request, *page_user(request))

    @router.post("/rules")
    def add_rule(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)

        def run() -> Response:
            state.curation(request).add_rule(user.name, _one(form, "action"), _one(form, "field"),
                                             _one(form, "value"), _one(form, "reason"))
            return back(f"{PAGES}/rules", "rule-add")

        return guarded(request, run, lambda msg, code: rules_view(request, user, cookie, error=msg, status=code))

    @router.post("/rules/{rule_id}")
    def update_rule(rule_id: int, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)

        def run() -> Response:
            state.curation(request).update_rule(
                user.name, rule_id, value=_one(form, "value") if "value" in form else None,
                reason=_one(form, "reason") if "reason" in form else None,
                active=(_one(form, "active") == "yes") if "active" in form else None)
            return back(f"{PAGES}/rules", "rule-update")

        return guarded(request, run, lambda msg, code: rules_view(request, user, cookie, error=msg, status=code))

    # ------------------------------------------------------------------ audit
    @router.get("/audit", response_class=HTMLResponse)
    def audit(request: Request, entity: str = "", entity_id: str = "", actor: str = "",
              before_id: int | None = None) -> HTMLResponse:
        user, cookie = page_user(request)
        entries = state.curation(request).audit_log(entity=entity or None, entity_id=entity_id or None,
                                                    actor=actor or None, limit=PAGE_SIZE + 1, before_id=before_id)
        older = None
        if len(entries) > PAGE_SIZE:
            entries = entries[:PAGE_SIZE]
            older = f"{PAGES}/audit?" + urlencode({"entity": entity, "entity_id": entity_id, "actor": actor,
                                                   "before_id": entries[-1]["id"]})
        return render(request, "audit.html", user, cookie, title="Audit log", current="/audit", entries=entries,
                      older_href=older, filters={"entity": entity, "entity_id": entity_id, "actor": actor})

    @router.get("/audit/export")
    def audit_export(request: Request, format: str = "jsonl") -> Response:
        page_user(request)
        if format not in ("jsonl", "csv"):
            raise HTTPException(400, "format is jsonl or csv")
        text = state.curation(request).export_audit(format)
        return Response(text, media_type="application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="oncolit-audit.{format}"',
                                 **SECURITY_HEADERS})

    # ------------------------------------------------------------------ import / export
    def transfer_view(request: Request, user: User, cookie: str, *, error: str | None = None, status: int = 200,
                      report: dict[str, Any] | None = None) -> HTMLResponse:
        return render(request, "transfer.html", user, cookie, status=status, error=error, title="Import and export",
                      current="/transfer", report=report, topics=sorted(state.curation(request).pins()))

    @router.get("/transfer", response_class=HTMLResponse)
    def transfer(request: Request) -> HTMLResponse:
        return transfer_view(request, *page_user(request))

    @router.post("/import")
    def import_ids(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request)
        check_csrf(cookie, form)

        def run() -> Response:
            report = state.curation(request).import_ids(user.name, _one(form, "text"), _one(form, "action"),
                                                        _one(form, "reason") or None)
            return transfer_view(request, user, cookie, report=report.as_dict())

        return guarded(request, run, lambda msg, code: transfer_view(request, user, cookie, error=msg, status=code))

    @router.get("/export")
    def export(request: Request, format: str = "ris", status: str = "approved", tag: str = "",
               topic: str = "") -> Response:
        user, cookie = page_user(request)
        cur = state.curation(request)
        try:
            if status not in ("approved", "excluded", "any"):
                raise CurationError("export approved, excluded or any records")
            ids = cur.curated(status=status, tag=tag or None, topic=topic or None)
            text, _skipped = cur.export(format, ids)
        except CurationError as exc:
            return transfer_view(request, user, cookie, error=str(exc), status=400)
        return Response(text, media_type=f"{MEDIA_TYPES[format]}; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="oncolit-{status}{SUFFIXES[format]}"', **SECURITY_HEADERS})

    # ------------------------------------------------------------------ people (admins)
    def users_view(request: Request, user: User, cookie: str, *, error: str | None = None, status: int = 200,
                   new_key: dict[str, str] | None = None) -> HTMLResponse:
        cur = state.curation(request)
        return render(request, "users.html", user, cookie, status=status, error=error, title="People and keys",
                      current="/users", users=cur.users(), keys=cur.keys(), roles=ROLES, new_key=new_key)

    @router.get("/users", response_class=HTMLResponse)
    def users(request: Request) -> HTMLResponse:
        return users_view(request, *page_user(request, "admin"))

    @router.post("/users")
    def add_user(request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request, "admin")
        check_csrf(cookie, form)

        def run() -> Response:
            state.curation(request).add_user(user.name, _one(form, "name"), _one(form, "role"))
            return back(f"{PAGES}/users", "user-add")

        return guarded(request, run, lambda msg, code: users_view(request, user, cookie, error=msg, status=code))

    @router.post("/users/{name}")
    def update_user(name: str, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request, "admin")
        check_csrf(cookie, form)

        def run() -> Response:
            state.curation(request).set_user(user.name, name, role=_one(form, "role") or None,
                                             active=(_one(form, "active") == "yes") if "active" in form else None)
            return back(f"{PAGES}/users", "user-update")

        return guarded(request, run, lambda msg, code: users_view(request, user, cookie, error=msg, status=code))

    @router.post("/users/{name}/keys")
    def new_key(name: str, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request, "admin")
        check_csrf(cookie, form)

        def run() -> Response:
            key_id, token = state.curation(request).create_key(user.name, name, "web")
            return users_view(request, user, cookie, new_key={"user": name, "key_id": key_id, "token": token})

        return guarded(request, run, lambda msg, code: users_view(request, user, cookie, error=msg, status=code))

    @router.post("/keys/{key_id}/revoke")
    def revoke(key_id: str, request: Request, form: dict[str, list[str]] = Depends(form_data)) -> Response:
        user, cookie = page_user(request, "admin")
        check_csrf(cookie, form)

        def run() -> Response:
            state.curation(request).revoke_key(user.name, key_id)
            return back(f"{PAGES}/users", "key-revoke")

        return guarded(request, run, lambda msg, code: users_view(request, user, cookie, error=msg, status=code))

    return router


class _Forbidden(HTTPException):
    def __init__(self, user: User, cookie: str, message: str):
        super().__init__(403, message)
        self.user, self.cookie = user, cookie


class _PageRoute(APIRoute):
    """Routes whose "not allowed" is a page, not JSON (an APIRouter cannot have exception handlers)."""

    def get_route_handler(self) -> Any:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except _Forbidden as exc:
                html = ENV.get_template("error.html").render(
                    base=PAGES, user=exc.user, csrf=csrf_token(exc.cookie), nav=NAV, current=None,
                    title="Not allowed", error=exc.detail, message=None)
                return HTMLResponse(html, status_code=403, headers=SECURITY_HEADERS)

        return handler
