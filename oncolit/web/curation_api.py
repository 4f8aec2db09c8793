"""JSON routes under /curation: readers read policy, librarians change it, admins manage people.

Authentication: `Authorization: Bearer <key>` (or `X-API-Key`). A missing or unknown key is 401, a
key whose role is too low is 403. Keys are never echoed, except once in the response that creates one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from ingest.curation import User
from ingest.curation.exports import FORMATS, MEDIA_TYPES, SUFFIXES
from ingest.source import Query as SourceQuery
from ingest.source import Window
from oncolit.api_routes.keys import API_KEY, BEARER
from oncolit.web.deps import WebState, api_user, http_errors

AuditFormat = Literal["jsonl", "csv"]


class SearchIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    source: Literal["pubmed", "ctgov"]
    query: str = Field(min_length=1, max_length=4000)
    params: dict[str, Any] = Field(default_factory=dict, description="CT.gov: cond, term, intr, phase, advanced …")
    schedule: str | None = Field(None, description="Cron expression; default: settings.schedule.ingest_cron.")
    owner: str | None = None
    active: bool = True
    backfill_from: dt.date | None = Field(None, description="First day to ingest (default: a few days back).")


class SearchPatch(BaseModel):
    query: str | None = Field(None, max_length=4000)
    params: dict[str, Any] | None = None
    schedule: str | None = None
    owner: str | None = None
    active: bool | None = None
    backfill_from: dt.date | None = Field(None, description="Re-read history from this day (else a changed "
                                                            "query starts at today).")


class WindowIn(BaseModel):
    since: dt.date | None = None
    until: dt.date | None = None


class DraftPreviewIn(WindowIn):
    source: Literal["pubmed", "ctgov"]
    query: str = Field(min_length=1, max_length=4000)
    params: dict[str, Any] = Field(default_factory=dict)


class RuleIn(BaseModel):
    action: Literal["include", "exclude"]
    field: str
    value: str = Field(min_length=1, max_length=1000)
    reason: str = Field(min_length=1, max_length=2000)


class RulePatch(BaseModel):
    action: Literal["include", "exclude"] | None = None
    value: str | None = Field(None, max_length=1000)
    reason: str | None = Field(None, max_length=2000)
    active: bool | None = None


class DecisionIn(BaseModel):
    record_ids: list[str] = Field(min_length=1, max_length=5000)
    action: Literal["approve", "exclude", "reset"]
    reason: str | None = Field(None, max_length=2000)


class TopicIn(BaseModel):
    topic: str = Field(min_length=1, max_length=200)


class TagIn(BaseModel):
    tag: str = Field(min_length=1, max_length=100)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=10000)


class ImportIn(BaseModel):
    text: str = Field(min_length=1, max_length=2_000_000, description="PMIDs / NCT ids, any separators.")
    action: Literal["approve", "exclude"]
    reason: str | None = Field(None, max_length=2000)


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["reader", "librarian", "admin"]


class UserPatch(BaseModel):
    role: Literal["reader", "librarian", "admin"] | None = None
    active: bool | None = None


class KeyIn(BaseModel):
    label: str | None = Field(None, max_length=200)


ACTIONS = {"approve": "approved", "exclude": "excluded", "reset": "pending"}


def build(state: WebState) -> APIRouter:
    router = APIRouter(prefix="/curation", tags=["curation"])

    def role(name: str) -> Any:
        def dependency(request: Request, _bearer: Any = Security(BEARER), _header: Any = Security(API_KEY)) -> User:
            # the schemes only declare, for OpenAPI, how the key travels; `api_user` reads and checks it
            return api_user(state, request, name)
        return Depends(dependency)

    reader, librarian, admin = role("reader"), role("librarian"), role("admin")

    # ------------------------------------------------------------------ reading (readers)
    @router.get("/me", summary="Who this key belongs to")
    def me(user: User = reader) -> dict[str, Any]:
        return {"name": user.name, "role": user.role}

    @router.get("/searches", summary="Saved searches: what OncoLit watches")
    def list_searches(request: Request, user: User = reader) -> list[dict[str, Any]]:
        return state.curation(request).searches()

    @router.get("/rules", summary="Include/exclude rules with reasons and authors")
    def list_rules(request: Request, user: User = reader) -> list[dict[str, Any]]:
        return [vars(r) for r in state.curation(request).rules()]

    @router.get("/pins", summary="Topics with their pinned (always featured) records")
    def pins(request: Request, user: User = reader) -> dict[str, list[str]]:
        return state.curation(request).pins()

    @router.get("/export", summary="A curated set as RIS, MEDLINE (.nbib), CSV, BibTeX or CSL-JSON")
    def export(request: Request, format: Literal["ris", "nbib", "csv", "bibtex", "csljson"] = "ris",
               status: Literal["approved", "excluded", "any"] = "approved", tag: str | None = None,
               topic: str | None = None, user: User = reader) -> Response:
        if status != "approved" and not user.can("librarian"):
            raise HTTPException(403, "only librarians export records other than approved ones")
        cur = state.curation(request)
        with http_errors():
            ids = cur.curated(status=status, tag=tag, topic=topic)
            text, skipped = cur.export(format, ids)
        assert format in FORMATS
        return Response(text, media_type=f"{MEDIA_TYPES[format]}; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="oncolit-{status}{SUFFIXES[format]}"',
            "X-OncoLit-Left-Out": ",".join(skipped)})

    # ------------------------------------------------------------------ reading (librarians)
    @router.get("/queue", summary="Records awaiting review")
    def queue(request: Request, sort: Literal["newest", "published", "relevance", "evidence"] = "newest",
              limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
              kind: Literal["article", "trial"] | None = None,
              q: str | None = Query(None, max_length=200, description="Every word in the title or record text."),
              user: User = librarian) -> dict[str, Any]:
        return state.curation(request).queue(sort=sort, limit=limit, offset=offset, kind=kind, text=q).as_dict()

    @router.get("/records/{record_id}", summary="A record with its decisions, verdict, links and audit trail")
    def record(record_id: str, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            return state.curation(request).record(record_id)

    @router.get("/exclusions", summary="Every excluded record with its reason")
    def exclusions(request: Request, user: User = librarian) -> dict[str, str]:
        return state.curation(request).exclusions()

    @router.get("/audit", summary="The audit log, newest first")
    def audit(request: Request, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
              limit: int = Query(100, ge=1, le=1000), before_id: int | None = None,
              user: User = librarian) -> list[dict[str, Any]]:
        return state.curation(request).audit_log(entity=entity, entity_id=entity_id, actor=actor, limit=limit,
                                                  before_id=before_id)

    @router.get("/audit/export", summary="The whole audit log, oldest first (JSON lines or CSV)")
    def audit_export(request: Request, format: AuditFormat = "jsonl", user: User = librarian) -> PlainTextResponse:
        text = state.curation(request).export_audit(format)
        media = "application/x-ndjson" if format == "jsonl" else "text/csv"
        return PlainTextResponse(text, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="oncolit-audit.{format}"'})

    # ------------------------------------------------------------------ sources (librarians)
    @router.post("/searches", status_code=201, summary="Add a saved search")
    def add_search(body: SearchIn, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            return state.curation(request).add_search(
                user.name, body.name, body.source, body.query, body.params, schedule=body.schedule,
                owner=body.owner, active=body.active, backfill_from=body.backfill_from)

    @router.patch("/searches/{name}", summary="Change a saved search (a new query starts a new watermark)")
    def update_search(name: str, body: SearchPatch, request: Request, user: User = librarian) -> dict[str, Any]:
        given = body.model_fields_set
        kwargs: dict[str, Any] = {k: getattr(body, k) for k in ("query", "params", "active", "backfill_from")}
        kwargs |= {k: getattr(body, k) for k in ("schedule", "owner") if k in given}
        with http_errors():
            return state.curation(request).update_search(user.name, name, **kwargs)

    @router.delete("/searches/{name}", summary="Stop watching (records stay)")
    def remove_search(name: str, request: Request, user: User = librarian) -> dict[str, str]:
        with http_errors():
            state.curation(request).remove_search(user.name, name)
        return {"removed": name}

    @router.post("/searches/{name}/preview", summary="Dry run: how many records the search returns for a window")
    def preview_search(name: str, body: WindowIn, request: Request, user: User = librarian) -> dict[str, Any]:
        from oncolit.wiring import open_source

        settings = state.settings_for(request)
        cur = state.curation(request)
        with http_errors():
            search = cur.catalog.get_search(name)
            with open_source(search["source"], settings) as source:
                return cur.preview_search(source, name, since=body.since, until=body.until,
                                          initial_lookback_days=settings.initial_lookback_days)

    @router.post("/preview", summary="Dry run of a query that is not saved yet")
    def preview_query(body: DraftPreviewIn, request: Request, user: User = librarian) -> dict[str, Any]:
        from oncolit.wiring import open_source

        until = body.until or dt.date.today()
        since = body.since or until - dt.timedelta(days=state.settings_for(request).initial_lookback_days)
        with http_errors(), open_source(body.source, state.settings_for(request)) as source:
            window = Window(since, until)
            count = state.curation(request).preview(source, SourceQuery(body.query, body.params), window)
        return {"source": body.source, "window": [since.isoformat(), until.isoformat()], "count": count}

    # ------------------------------------------------------------------ rules (librarians)
    @router.post("/rules", status_code=201, summary="Add an include/exclude rule")
    def add_rule(body: RuleIn, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            return vars(state.curation(request).add_rule(user.name, body.action, body.field, body.value, body.reason))

    @router.patch("/rules/{rule_id}", summary="Change, retire (active=false) or restore a rule")
    def update_rule(rule_id: int, body: RulePatch, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            return vars(state.curation(request).update_rule(user.name, rule_id, value=body.value, reason=body.reason,
                                                            active=body.active, action=body.action))

    # ------------------------------------------------------------------ decisions (librarians)
    @router.post("/decisions", summary="Approve, exclude (reason required) or reset records, in bulk")
    def decide(body: DecisionIn, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            changed = state.curation(request).decide(user.name, body.record_ids, ACTIONS[body.action], body.reason)
        return {"action": body.action, "changed": changed}

    @router.post("/records/{record_id}/pins", status_code=201, summary="Pin to a topic (always featured)")
    def pin(record_id: str, body: TopicIn, request: Request, user: User = librarian) -> dict[str, str]:
        with http_errors():
            state.curation(request).pin(user.name, record_id, body.topic)
        return {"record_id": record_id, "topic": body.topic}

    @router.delete("/records/{record_id}/pins/{topic}", summary="Unpin")
    def unpin(record_id: str, topic: str, request: Request, user: User = librarian) -> dict[str, str]:
        with http_errors():
            state.curation(request).unpin(user.name, record_id, topic)
        return {"record_id": record_id, "unpinned": topic}

    @router.post("/records/{record_id}/tags", status_code=201, summary="Tag a record")
    def tag(record_id: str, body: TagIn, request: Request, user: User = librarian) -> dict[str, str]:
        with http_errors():
            state.curation(request).tag(user.name, [record_id], body.tag)
        return {"record_id": record_id, "tag": body.tag}

    @router.delete("/records/{record_id}/tags/{tag}", summary="Remove a tag")
    def untag(record_id: str, tag: str, request: Request, user: User = librarian) -> dict[str, str]:
        with http_errors():
            state.curation(request).untag(user.name, record_id, tag)
        return {"record_id": record_id, "untagged": tag}

    @router.post("/records/{record_id}/notes", status_code=201, summary="Add a note")
    def note(record_id: str, body: NoteIn, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            note_id = state.curation(request).note(user.name, record_id, body.text)
        return {"record_id": record_id, "note_id": note_id}

    @router.post("/import", summary="Approve or exclude a list of PMIDs / NCT ids")
    def import_ids(body: ImportIn, request: Request, user: User = librarian) -> dict[str, Any]:
        with http_errors():
            return state.curation(request).import_ids(user.name, body.text, body.action, body.reason).as_dict()

    # ------------------------------------------------------------------ people (admins)
    @router.get("/users", summary="Users with roles")
    def users(request: Request, user: User = admin) -> list[dict[str, Any]]:
        return state.curation(request).users()

    @router.get("/keys", summary="API keys (ids and owners; never the keys)")
    def keys(request: Request, user_name: str | None = None, user: User = admin) -> list[dict[str, Any]]:
        return state.curation(request).keys(user_name)

    @router.post("/users", status_code=201, summary="Add a user")
    def add_user(body: UserIn, request: Request, user: User = admin) -> dict[str, Any]:
        with http_errors():
            return state.curation(request).add_user(user.name, body.name, body.role)

    @router.patch("/users/{name}", summary="Change a user's role, or disable/enable them")
    def update_user(name: str, body: UserPatch, request: Request, user: User = admin) -> dict[str, Any]:
        with http_errors():
            return state.curation(request).set_user(user.name, name, role=body.role, active=body.active)

    @router.post("/users/{name}/keys", status_code=201, summary="Make an API key (shown once, in this response)")
    def create_key(name: str, body: KeyIn, request: Request, user: User = admin) -> dict[str, Any]:
        with http_errors():
            key_id, token = state.curation(request).create_key(user.name, name, body.label)
        return {"key_id": key_id, "user": name, "key": token,
                "note": "store this key now: it is not kept and cannot be shown again"}

    @router.delete("/keys/{key_id}", summary="Revoke an API key")
    def revoke_key(key_id: str, request: Request, user: User = admin) -> dict[str, str]:
        with http_errors():
            state.curation(request).revoke_key(user.name, key_id)
        return {"revoked": key_id}

    return router
