"""`Curation`: librarian policy on top of the catalog — sources, rules, decisions, people, audit.

Every change goes through one method that checks the actor's role, writes the change and its audit
entry in one transaction, and bumps `records.change_seq` of each record whose visibility flipped, so
the index sync (which follows change_seq) drops or restores its points. Reads (`is_excluded`,
`verdicts`, `exclusions`, `visible`, `pinned`) evaluate decisions and the current rules at read time;
the verdict cache filled at ingest (`evaluate_batch`) and on rule changes only makes them cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, and_, cast, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ingest.catalog import Catalog, model_from_fields
from ingest.catalog import schema as ct
from ingest.catalog.dialect import serialize_change_seq, upsert
from ingest.catalog.schema import schema_migrations
from ingest.curation import access, exports
from ingest.curation import schema as cs
from ingest.curation.access import Role, User
from ingest.curation.migrations import m004_curation
from ingest.curation.relevance import RelevanceModel, tokens
from ingest.curation.rules import (
    KEPT,
    CurationError,
    PermissionDenied,
    Rule,
    Verdict,
    allow_list_verdict,
    decision_verdict,
    exclude_verdict,
    facets_of,
    normalise_record_id,
    normalise_value,
    rules_verdict,
)
from ingest.errors import AlreadyExists, RecordNotFound
from ingest.records import Article, Trial
from ingest.source import Query, Source, Window

log = logging.getLogger(__name__)

# (record) -> (evidence level code, rank: 1 = strongest) or None; the app passes synthesis.grading's.
EvidenceFn = Callable[[Article | Trial], "tuple[str, int] | None"]
DECISIONS = ("approved", "excluded", "pending")
SORTS = ("newest", "published", "relevance", "evidence")  # newest: first seen; published: publication date
SESSION_HOURS = 12
EVIDENCE_PER_CALL = 2000  # at most this many queue records graded per queue() call (the rest later)
RELEVANCE_WINDOW = 5000  # relevance ranks the newest this-many pending records
_BATCH = 500
_UNSET: Any = object()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))


def _chunks(items: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


_READY: weakref.WeakSet[Any] = weakref.WeakSet()  # engines whose catalog has the curation tables


def ensure_schema(catalog: Catalog) -> None:
    """Apply m004_curation if this catalog has not had it (a no-op once it is in MIGRATIONS)."""
    if catalog.engine in _READY:
        return
    with catalog.engine.begin() as conn:
        done = conn.execute(select(schema_migrations.c.name).where(
            schema_migrations.c.name == "m004_curation")).first()
        if done is None:
            m004_curation(conn)
            conn.execute(insert(schema_migrations).values(name="m004_curation", applied_at=_now()))
    _READY.add(catalog.engine)


@dataclass(frozen=True)
class QueueItem:
    record_id: str
    kind: str
    title: str
    published: dt.date | None
    first_seen: dt.datetime
    search: str | None
    evidence_level: str | None
    evidence_rank: int | None
    relevance: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "kind": self.kind, "title": self.title,
                "published": self.published.isoformat() if self.published else None,
                "first_seen": self.first_seen.isoformat(), "search": self.search,
                "evidence_level": self.evidence_level, "evidence_rank": self.evidence_rank,
                "relevance": None if self.relevance is None else round(self.relevance, 4)}


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    total: int
    sort: str
    relevance_trained: bool

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "sort": self.sort, "relevance_trained": self.relevance_trained,
                "items": [i.as_dict() for i in self.items]}


@dataclass(frozen=True)
class ImportReport:
    action: str
    applied: list[str]
    not_in_catalog: list[str]
    invalid: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "applied": self.applied, "not_in_catalog": self.not_in_catalog,
                "invalid": self.invalid}


class Curation:
    """A handle on the curation tables of one catalog (it does not own the catalog)."""

    def __init__(self, catalog: Catalog, *, evidence: EvidenceFn | None = None,
                 verified_keys: access.VerifiedKeys | None = None):
        self.catalog = catalog
        self.engine = catalog.engine
        self.evidence = evidence
        self.verified_keys = verified_keys  # the server's cache of keys that passed scrypt (None: check each time)
        self._rules_cache: tuple[int, list[Rule]] | None = None
        self._relevance_cache: tuple[Any, RelevanceModel | None] | None = None
        ensure_schema(catalog)

    # ============================================================================ people and access
    def user(self, name: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cs.curation_users).where(cs.curation_users.c.name == name)).first()
        return User(row.name, row.role, bool(row.active)) if row else None

    def users(self) -> list[dict[str, Any]]:
        keys = cs.curation_api_keys
        with self.engine.connect() as conn:
            counts = dict(conn.execute(select(keys.c.user_name, func.count()).where(keys.c.revoked_at.is_(None))
                                       .group_by(keys.c.user_name)).all())
            rows = conn.execute(select(cs.curation_users).order_by(cs.curation_users.c.name)).all()
        return [{"name": r.name, "role": r.role, "active": bool(r.active), "created_at": r.created_at,
                 "created_by": r.created_by, "active_keys": counts.get(r.name, 0)} for r in rows]

    def require(self, actor: str, role: Role) -> User:
        """The acting user, if active and at least `role`; else PermissionDenied."""
        user = self.user(actor)
        if user is None:
            raise PermissionDenied(f"no user named {actor!r}; an admin adds one with "
                                   f"`oncolit curate users add {actor} --role librarian`")
        if not user.active:
            raise PermissionDenied(f"user {actor!r} is disabled")
        if not user.can(role):
            raise PermissionDenied(f"{actor!r} is a {user.role}; this needs a {role}")
        return user

    def add_user(self, actor: str, name: str, role: str) -> dict[str, Any]:
        """Add a user. The very first user may be added by anyone and must be an admin (bootstrap)."""
        access.check_name(name)
        role = access.check_role(role)
        with self.engine.begin() as conn:
            empty = conn.execute(select(func.count()).select_from(cs.curation_users)).scalar_one() == 0
            if empty:
                if role != "admin":
                    raise CurationError("the first user must be an admin (`--role admin`); it then adds the others")
            else:
                self._require_in(conn, actor, "admin")
            after = {"name": name, "role": role, "active": True}
            try:
                conn.execute(insert(cs.curation_users).values(**after, created_at=_now(), created_by=actor))
            except IntegrityError as exc:
                raise CurationError(f"a user named {name!r} already exists") from exc
            self._audit(conn, actor, "user.add", "user", name, None, after)
        return after

    def set_user(self, actor: str, name: str, *, role: str | None = None, active: bool | None = None) -> dict[str, Any]:
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "admin")
            row = conn.execute(select(cs.curation_users).where(cs.curation_users.c.name == name)).first()
            if row is None:
                raise RecordNotFound(f"no user named {name!r}")
            before = {"role": row.role, "active": bool(row.active)}
            after = dict(before)
            if role is not None:
                after["role"] = access.check_role(role)
            if active is not None:
                after["active"] = active
            if after == before:
                return {"name": name, **after}
            if (before["role"] == "admin" and before["active"]) and (after["role"] != "admin" or not after["active"]):
                admins = conn.execute(select(func.count()).select_from(cs.curation_users).where(and_(
                    cs.curation_users.c.role == "admin", cs.curation_users.c.active.is_(True)))).scalar_one()
                if admins <= 1:
                    raise CurationError("this is the last active admin; make another admin first")
            conn.execute(update(cs.curation_users).where(cs.curation_users.c.name == name).values(**after))
            if not after["active"]:  # disabling revokes: enabling again must not bring old keys back to life
                keys = cs.curation_api_keys
                revoked = [r.key_id for r in conn.execute(select(keys.c.key_id).where(and_(
                    keys.c.user_name == name, keys.c.revoked_at.is_(None))))]
                conn.execute(update(keys).where(keys.c.key_id.in_(revoked)).values(revoked_at=_now()))
                conn.execute(cs.curation_sessions.delete().where(cs.curation_sessions.c.user_name == name))
                after_audit = {**after, "keys_revoked": revoked}
            self._audit(conn, actor, "user.update", "user", name, before,
                        after_audit if not after["active"] else after)
        return {"name": name, **after}

    def create_key(self, actor: str, user_name: str | None = None, label: str | None = None) -> tuple[str, str]:
        """(key id, token). Admins make keys for anyone, others for themselves. The token is shown once."""
        user_name = user_name or actor
        salt = access.new_salt()
        key_id, token = access.new_token()
        digest = access.hash_token(token, salt)
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "admin" if user_name != actor else "reader")
            owner = conn.execute(select(cs.curation_users).where(cs.curation_users.c.name == user_name)).first()
            if owner is None or not owner.active:
                raise CurationError(f"no active user named {user_name!r}")
            conn.execute(insert(cs.curation_api_keys).values(
                key_id=key_id, user_name=user_name, label=label, salt=salt.hex(), hash=digest,
                created_at=_now(), created_by=actor))
            self._audit(conn, actor, "key.create", "key", key_id, None,
                        {"user": user_name, "label": label, "role": owner.role})
        return key_id, token

    def revoke_key(self, actor: str, key_id: str) -> None:
        keys = cs.curation_api_keys
        with self.engine.begin() as conn:
            row = conn.execute(select(keys).where(keys.c.key_id == key_id)).first()
            if row is None:
                raise RecordNotFound(f"no API key {key_id!r}")
            self._require_in(conn, actor, "admin" if row.user_name != actor else "reader")
            if row.revoked_at is not None:
                return
            conn.execute(update(keys).where(keys.c.key_id == key_id).values(revoked_at=_now()))
            conn.execute(cs.curation_sessions.delete().where(cs.curation_sessions.c.key_id == key_id))
            self._audit(conn, actor, "key.revoke", "key", key_id, {"user": row.user_name, "revoked": False},
                        {"user": row.user_name, "revoked": True})

    def keys(self, user_name: str | None = None) -> list[dict[str, Any]]:
        keys = cs.curation_api_keys
        query = select(keys.c.key_id, keys.c.user_name, keys.c.label, keys.c.created_at, keys.c.created_by,
                       keys.c.revoked_at, keys.c.last_used_at).order_by(keys.c.created_at)
        if user_name:
            query = query.where(keys.c.user_name == user_name)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def authenticate(self, token: str | None) -> tuple[User, str] | None:
        """(user, key id) for a valid, unrevoked key of an active user; else None. Never logs the token."""
        key_id = access.parse_token(token or "")
        if key_id is None:
            return None
        keys, users = cs.curation_api_keys, cs.curation_users
        with self.engine.connect() as conn:
            row = conn.execute(select(keys, users.c.role, users.c.active).join(
                users, users.c.name == keys.c.user_name).where(keys.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None or not row.active:
            return None
        if not access.verify_token(token or "", row.salt, row.hash, self.verified_keys):
            return None
        now = _now()
        if row.last_used_at is None or now - _aware(row.last_used_at) > dt.timedelta(minutes=5):
            with self.engine.begin() as conn:
                conn.execute(update(keys).where(keys.c.key_id == key_id).values(last_used_at=now))
        return User(row.user_name, row.role, True), key_id

    def open_session(self, token: str) -> tuple[str, User] | None:
        """Log in with a key: (session cookie value, user), or None for a bad key."""
        found = self.authenticate(token)
        if found is None:
            return None
        user, key_id = found
        cookie, digest = access.session_token()
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(cs.curation_sessions.delete().where(cs.curation_sessions.c.expires_at < now))
            conn.execute(insert(cs.curation_sessions).values(
                token_hash=digest, user_name=user.name, key_id=key_id, created_at=now,
                expires_at=now + dt.timedelta(hours=SESSION_HOURS)))
        return cookie, user

    def session_user(self, cookie: str | None) -> User | None:
        if not cookie:
            return None
        s, keys, users = cs.curation_sessions, cs.curation_api_keys, cs.curation_users
        with self.engine.connect() as conn:
            row = conn.execute(select(s.c.expires_at, users.c.name, users.c.role, users.c.active, keys.c.revoked_at)
                               .join(users, users.c.name == s.c.user_name).join(keys, keys.c.key_id == s.c.key_id)
                               .where(s.c.token_hash == access.sha256(cookie))).first()
        if row is None or not row.active or row.revoked_at is not None or _aware(row.expires_at) < _now():
            return None
        return User(row.name, row.role, True)

    def close_session(self, cookie: str | None) -> None:
        if cookie:
            with self.engine.begin() as conn:
                conn.execute(cs.curation_sessions.delete().where(
                    cs.curation_sessions.c.token_hash == access.sha256(cookie)))

    def _require_in(self, conn: Connection, actor: str, role: Role) -> User:
        row = conn.execute(select(cs.curation_users).where(cs.curation_users.c.name == actor)).first()
        if row is None:
            raise PermissionDenied(f"no user named {actor!r}; an admin adds one with "
                                   f"`oncolit curate users add {actor} --role librarian`")
        user = User(row.name, row.role, bool(row.active))
        if not user.active:
            raise PermissionDenied(f"user {actor!r} is disabled")
        if not user.can(role):
            raise PermissionDenied(f"{actor!r} is a {user.role}; this needs a {role}")
        return user

    # ============================================================================ audit
    def _audit(self, conn: Connection, actor: str, action: str, entity: str, entity_id: str,
               before: Any, after: Any) -> None:
        conn.execute(insert(cs.curation_audit).values(
            at=_now(), actor=actor, action=action, entity=entity, entity_id=str(entity_id),
            before=_jsonable(before), after=_jsonable(after)))

    def audit_log(self, *, entity: str | None = None, entity_id: str | None = None, actor: str | None = None,
                  limit: int | None = 100, before_id: int | None = None, ascending: bool = False
                  ) -> list[dict[str, Any]]:
        a = cs.curation_audit
        query = select(a).order_by(a.c.id.asc() if ascending else a.c.id.desc())
        for column, value in ((a.c.entity, entity), (a.c.entity_id, entity_id), (a.c.actor, actor)):
            if value:
                query = query.where(column == value)
        if before_id:
            query = query.where(a.c.id < before_id)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def export_audit(self, fmt: str = "jsonl") -> str:
        """The whole log, oldest first, as JSON lines or CSV."""
        rows = self.audit_log(limit=None, ascending=True)
        if fmt == "jsonl":
            return "".join(json.dumps(_jsonable(r), ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        if fmt == "csv":
            import csv
            import io
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\r\n")
            writer.writerow(["id", "at", "actor", "action", "entity", "entity_id", "before", "after"])
            for r in rows:
                writer.writerow([r["id"], _jsonable(r["at"]), r["actor"], r["action"], r["entity"], r["entity_id"],
                                 json.dumps(r["before"], ensure_ascii=False, sort_keys=True),
                                 json.dumps(r["after"], ensure_ascii=False, sort_keys=True)])
            return buf.getvalue()
        raise CurationError(f"unknown audit export format {fmt!r}; choose jsonl or csv")

    # ============================================================================ saved searches
    def add_search(self, actor: str, name: str, source: str, query: str, params: dict[str, Any] | None = None,
                   *, schedule: str | None = None, owner: str | None = None, active: bool = True,
                   backfill_from: dt.date | None = None) -> dict[str, Any]:
        self.require(actor, "librarian")
        _check_new_search(self.catalog, name, source)
        _check_cron(schedule)
        row = self.catalog.add_search(name, source, query, params or {}, schedule, owner or actor, active,
                                      watermark=backfill_from)
        with self.engine.begin() as conn:
            self._audit(conn, actor, "search.add", "search", name, None, _search_view(row))
        return row

    def update_search(self, actor: str, name: str, *, query: str | None = None,
                      params: dict[str, Any] | None = None, schedule: Any = _UNSET, owner: Any = _UNSET,
                      active: bool | None = None, backfill_from: dt.date | None = None,
                      today: dt.date | None = None) -> dict[str, Any]:
        """Change a saved search. A new query (or new params) starts a new watermark at `today`: history is
        not re-ingested unless `backfill_from` says from when. `backfill_from` alone re-reads from that day."""
        self.require(actor, "librarian")
        s = ct.saved_searches
        today = today or dt.date.today()
        with self.engine.begin() as conn:
            row = conn.execute(select(s).where(s.c.name == name)).first()
            if row is None:
                raise RecordNotFound(f"no saved search named {name!r}; see `oncolit searches list`")
            before = _search_view(dict(row._mapping))
            values: dict[str, Any] = {}
            query_changed = (query is not None and query != row.query) or (
                params is not None and dict(params) != dict(row.params or {}))
            if query is not None:
                if not query.strip():
                    raise CurationError("a saved search needs a query")
                values["query"] = query
            if params is not None:
                values["params"] = dict(params)
            if schedule is not _UNSET:
                _check_cron(schedule)
                values["schedule"] = schedule or None
            if owner is not _UNSET:
                values["owner"] = owner or None
            if active is not None:
                values["active"] = active
            if backfill_from is not None:
                values["watermark"] = backfill_from
            elif query_changed:
                values["watermark"] = today
            if not values:
                return dict(row._mapping)
            values["updated_at"] = _now()
            conn.execute(update(s).where(s.c.name == name).values(**values))
            new = dict(conn.execute(select(s).where(s.c.name == name)).first()._mapping)
            action = ("search.resume" if active else "search.pause") if set(values) == {"active", "updated_at"} \
                else "search.update"
            self._audit(conn, actor, action, "search", name, before, _search_view(new))
        return new

    def remove_search(self, actor: str, name: str) -> None:
        """Stop watching (the records it brought stay in the catalog)."""
        self.require(actor, "librarian")
        before = _search_view(self.catalog.get_search(name))
        self.catalog.remove_search(name)
        with self.engine.begin() as conn:
            self._audit(conn, actor, "search.remove", "search", name, before, None)

    def operator_add_search(self, operator: str, name: str, source: str, query: str,
                            params: dict[str, Any] | None = None, *, schedule: str | None = None,
                            owner: str | None = None, watermark: dt.date | None = None) -> dict[str, Any]:
        """`oncolit searches add`: the machine's operator (shell access to the data dir, so no role to
        check), still audited under their name so the librarians' log shows every change."""
        _check_new_search(self.catalog, name, source)
        _check_cron(schedule)
        row = self.catalog.add_search(name, source, query, params or {}, schedule, owner, watermark=watermark)
        with self.engine.begin() as conn:
            self._audit(conn, operator, "search.add", "search", name, None, _search_view(row))
        return row

    def operator_remove_search(self, operator: str, name: str) -> None:
        before = _search_view(self.catalog.get_search(name))
        self.catalog.remove_search(name)
        with self.engine.begin() as conn:
            self._audit(conn, operator, "search.remove", "search", name, before, None)

    def searches(self) -> list[dict[str, Any]]:
        return self.catalog.list_searches()

    @staticmethod
    def preview(source: Source, query: Query, window: Window) -> int:
        """How many records `query` returns for `window`, asked through the source's own count path."""
        return source.count(query, window)

    def preview_search(self, source: Source, name: str, *, since: dt.date | None = None,
                       until: dt.date | None = None, today: dt.date | None = None,
                       initial_lookback_days: int = 7) -> dict[str, Any]:
        """Dry run of a saved search: the window its next run would cover (or the one given), and the count."""
        from ingest.pipeline import plan_window
        search = self.catalog.get_search(name)
        if search["source"] != source.name:
            raise CurationError(f"search {name!r} reads {search['source']}, not {source.name}")
        window = plan_window(search["watermark"], since, until, today or dt.date.today(), initial_lookback_days)
        count = self.preview(source, Query(search["query"], dict(search.get("params") or {})), window)
        return {"search": name, "source": source.name, "window": [window.start.isoformat(), window.end.isoformat()],
                "count": count}

    # ============================================================================ rules
    def rules_rev(self, conn: Connection | None = None) -> int:
        query = select(cs.curation_state.c.value).where(cs.curation_state.c.key == "rules_rev")
        if conn is not None:
            return conn.execute(query).scalar_one_or_none() or 0
        with self.engine.connect() as c:
            return c.execute(query).scalar_one_or_none() or 0

    def rules(self, *, active_only: bool = False) -> list[Rule]:
        r = cs.curation_rules
        query = select(r).order_by(r.c.id)
        if active_only:
            query = query.where(r.c.active.is_(True))
        with self.engine.connect() as conn:
            return [Rule.from_row(row) for row in conn.execute(query)]

    def rule(self, rule_id: int) -> Rule:
        with self.engine.connect() as conn:
            row = conn.execute(select(cs.curation_rules).where(cs.curation_rules.c.id == rule_id)).first()
        if row is None:
            raise RecordNotFound(f"no rule #{rule_id}")
        return Rule.from_row(row)

    def _active_rules(self, rev: int) -> list[Rule]:
        if self._rules_cache is None or self._rules_cache[0] != rev:
            self._rules_cache = (rev, self.rules(active_only=True))
        return self._rules_cache[1]

    def add_rule(self, actor: str, action: str, field: str, value: str, reason: str) -> Rule:
        if action not in ("include", "exclude"):
            raise CurationError(f"a rule either includes or excludes, not {action!r}")
        if not (reason or "").strip():
            raise CurationError("a rule needs a reason (librarians see it next to every record it hides)")
        if action == "include" and field == "record_id":
            raise CurationError("to always show one record, approve it; include rules are allow-lists by field")
        stored = normalise_value(field, value)
        now = _now()
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            rule_id = conn.execute(insert(cs.curation_rules).values(
                action=action, field=field, value=stored, reason=reason.strip(), author=actor, active=True,
                created_at=now, updated_at=now)).inserted_primary_key[0]
            rule = Rule(int(rule_id), action, field, stored, reason.strip(), actor)  # type: ignore[arg-type]
            self._audit(conn, actor, "rule.add", "rule", str(rule.id), None, _rule_view(rule))
            self._bump_rules_rev(conn)
        self.refresh_verdicts()
        return rule

    def update_rule(self, actor: str, rule_id: int, *, value: str | None = None, reason: str | None = None,
                    active: bool | None = None, action: str | None = None) -> Rule:
        """Change a rule (rules are never deleted: `active=False` retires one, keeping its history)."""
        r = cs.curation_rules
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            row = conn.execute(select(r).where(r.c.id == rule_id)).first()
            if row is None:
                raise RecordNotFound(f"no rule #{rule_id}")
            old = Rule.from_row(row)
            values: dict[str, Any] = {}
            if value is not None:
                values["value"] = normalise_value(old.field, value)
            if reason is not None:
                if not reason.strip():
                    raise CurationError("a rule needs a reason")
                values["reason"] = reason.strip()
            if active is not None:
                values["active"] = active
            if action is not None:
                if action not in ("include", "exclude"):
                    raise CurationError(f"a rule either includes or excludes, not {action!r}")
                if action == "include" and old.field == "record_id":
                    raise CurationError("include rules cannot name a record; approve it instead")
                values["action"] = action
            if not values:
                return old
            conn.execute(update(r).where(r.c.id == rule_id).values(**values, updated_at=_now()))
            new = Rule.from_row(conn.execute(select(r).where(r.c.id == rule_id)).first())
            verb = "rule.update" if set(values) != {"active"} else ("rule.enable" if active else "rule.disable")
            self._audit(conn, actor, verb, "rule", str(rule_id), _rule_view(old), _rule_view(new))
            self._bump_rules_rev(conn)
        self.refresh_verdicts()
        return new

    def _bump_rules_rev(self, conn: Connection) -> None:
        st = cs.curation_state
        rev = self.rules_rev(conn)
        upsert(conn, st, [{"key": "rules_rev", "value": rev + 1}], ["key"])
        self._rules_cache = None

    def refresh_verdicts(self, *, only_stale: bool = True) -> dict[str, int]:
        """Re-evaluate the rules over the catalog (after a rule change), in batches; records whose
        verdict flipped get a new change_seq so the index follows. Returns counts."""
        counts = {"evaluated": 0, "flipped": 0}
        rev = self.rules_rev()
        rules = self._active_rules(rev)
        rec, ver = ct.records, cs.curation_verdicts
        if not rules:  # only what was excluded can change: everything is kept now
            with self.engine.begin() as conn:
                flipped = conn.execute(select(ver.c.record_id).where(ver.c.excluded.is_(True))).scalars().all()
                conn.execute(update(ver).where(ver.c.excluded.is_(True)).values(
                    excluded=False, rule_ids=[], rules_rev=rev, evaluated_at=_now()))
                self._bump(conn, flipped)
            return {"evaluated": 0, "flipped": len(flipped)}
        last_id = ""
        while True:
            with self.engine.connect() as conn:
                query = (select(rec.c.id, rec.c.current_version)
                         .select_from(rec.outerjoin(ver, ver.c.record_id == rec.c.id))
                         .where(rec.c.id > last_id).where(rec.c.current_version > 0)
                         .order_by(rec.c.id).limit(_BATCH))
                if only_stale:
                    query = query.where(or_(ver.c.record_id.is_(None), ver.c.rules_rev != rev,
                                            ver.c.version != rec.c.current_version))
                rows = conn.execute(query).all()
            if not rows:
                break
            last_id = rows[-1].id
            fields = self._fields([r.id for r in rows])
            verdicts = {rid: rules_verdict(rules, facets_of(f)) for rid, f in fields.items()}
            with self.engine.begin() as conn:
                counts["flipped"] += self._store_verdicts(conn, verdicts, {r.id: r.current_version for r in rows}, rev)
            counts["evaluated"] += len(verdicts)
        return counts

    def _store_verdicts(self, conn: Connection, verdicts: dict[str, Verdict], versions: dict[str, int],
                        rev: int) -> int:
        """Upsert verdict rows; bump change_seq of records whose rule verdict flipped. Returns flips."""
        ver = cs.curation_verdicts
        ids = list(verdicts)
        old: dict[str, bool] = {}
        for part in _chunks(ids):
            old.update(conn.execute(select(ver.c.record_id, ver.c.excluded).where(ver.c.record_id.in_(part))).all())
        now = _now()
        rows = [{"record_id": rid, "version": versions[rid], "rules_rev": rev, "excluded": v.excluded,
                 "rule_ids": list(v.rule_ids), "evaluated_at": now} for rid, v in verdicts.items()]
        # One upsert: two ingest workers evaluating the same records at once must not collide.
        upsert(conn, ver, rows, ["record_id"])
        flipped = [rid for rid, v in verdicts.items() if old.get(rid, False) != v.excluded]
        self._bump(conn, flipped)
        return len(flipped)

    def _bump(self, conn: Connection, record_ids: Sequence[str]) -> None:
        """Give records a new change_seq: derived stores (the index) re-read them."""
        if not record_ids:
            return
        rec = ct.records
        serialize_change_seq(conn)
        seq = (conn.execute(select(func.coalesce(func.max(rec.c.change_seq), 0))).scalar_one() or 0) + 1
        for part in _chunks(list(record_ids)):
            conn.execute(update(rec).where(rec.c.id.in_(part)).values(change_seq=seq))

    def evaluate_batch(self, record_ids: Iterable[str]) -> dict[str, Verdict]:
        """The ingest-time hook: evaluate the rules on the current versions of these records and cache
        the verdicts. Returns each record's rules verdict (decisions not applied)."""
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return {}
        rev = self.rules_rev()
        rules = self._active_rules(rev)
        if not rules:  # nothing to flag; reads treat a missing verdict as "kept" while no rule is active
            return {}
        versions = self._versions(ids)
        fields = self._fields([rid for rid, v in versions.items() if v > 0])
        verdicts = {rid: rules_verdict(rules, facets_of(f)) for rid, f in fields.items()}
        with self.engine.begin() as conn:
            self._store_verdicts(conn, verdicts, versions, rev)
        flagged = sum(v.excluded for v in verdicts.values())
        if flagged:
            log.info("curation rules flagged %d of %d records in the batch", flagged, len(verdicts))
        return verdicts

    # ============================================================================ reading: who may see what
    def verdicts(self, record_ids: Iterable[str]) -> dict[str, Verdict]:
        """Decisions and current rules applied to each record (read time; writes nothing)."""
        return {rid: decision_verdict(status, reason, part)
                for rid, (part, status, reason) in self._evaluate(record_ids).items()}

    def _evaluate(self, record_ids: Iterable[str]) -> dict[str, tuple[Verdict, str | None, str | None]]:
        """Per record: (the rules' verdict, decision status, decision reason)."""
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return {}
        dec, ver, rec = cs.curation_decisions, cs.curation_verdicts, ct.records
        decisions: dict[str, tuple[str, str | None]] = {}
        cached: dict[str, Any] = {}
        versions: dict[str, int] = {}
        with self.engine.connect() as conn:  # one connection, three small queries per 500 ids
            rev = self.rules_rev(conn)
            rules = self._active_rules(rev)
            for part in _chunks(ids):
                decisions.update({r.record_id: (r.status, r.reason) for r in conn.execute(
                    select(dec.c.record_id, dec.c.status, dec.c.reason).where(dec.c.record_id.in_(part)))})
                for r in conn.execute(select(rec.c.id, rec.c.current_version, ver.c.version, ver.c.rules_rev,
                                             ver.c.excluded, ver.c.rule_ids)
                                      .select_from(rec.outerjoin(ver, ver.c.record_id == rec.c.id))
                                      .where(rec.c.id.in_(part))):
                    versions[r.id] = r.current_version
                    if r.version is not None:
                        cached[r.id] = r
        by_id = {r.id: r for r in rules}
        stale = [rid for rid in ids if rules and versions.get(rid, 0) > 0 and not (
            rid in cached and cached[rid].version == versions[rid] and cached[rid].rules_rev == rev)]
        fresh_fields = self._fields(stale)
        out: dict[str, tuple[Verdict, str | None, str | None]] = {}
        for rid in ids:
            if not rules:
                part = KEPT
            elif rid in fresh_fields:
                part = rules_verdict(rules, facets_of(fresh_fields[rid]))
            elif rid in cached and versions.get(rid, 0) > 0:
                part = _cached_verdict(cached[rid], by_id)
            else:  # not (yet) in the catalog: only rules naming the record can apply
                hits = [r for r in rules if r.action == "exclude" and r.field == "record_id" and r.value == rid]
                part = exclude_verdict(hits) if hits else KEPT
            status, reason = decisions.get(rid, (None, None))
            out[rid] = (part, status, reason)
        return out

    def verdict(self, record_id: str) -> Verdict:
        return self.verdicts([record_id])[record_id]

    def is_excluded(self, record_id: str) -> bool:
        """For index sync, search, QA and digests: True when a record must not be shown or cited."""
        return self.verdicts([record_id])[record_id].excluded

    def visible(self, record_ids: Iterable[str]) -> list[str]:
        """The ids that may be shown, in the given order (filter search hits and citations with this)."""
        ids = list(record_ids)
        verdicts = self.verdicts(ids)
        return [rid for rid in ids if not verdicts[rid].excluded]

    def exclusions(self) -> dict[str, str]:
        """Every excluded record id with its reason (decisions and current rules)."""
        dec, ver, rec = cs.curation_decisions, cs.curation_verdicts, ct.records
        rev = self.rules_rev()
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            decided = {r.record_id: (r.status, r.reason) for r in conn.execute(select(dec))}
            cached = conn.execute(select(ver.c.record_id).join(rec, rec.c.id == ver.c.record_id).where(and_(
                ver.c.excluded.is_(True), ver.c.rules_rev == rev, ver.c.version == rec.c.current_version))).scalars().all()
            stale = conn.execute(select(rec.c.id).select_from(rec.outerjoin(ver, ver.c.record_id == rec.c.id))
                                 .where(rec.c.current_version > 0).where(or_(
                                     ver.c.record_id.is_(None), ver.c.rules_rev != rev,
                                     ver.c.version != rec.c.current_version))).scalars().all()
        rule_named = [r.value for r in self._active_rules(rev) if r.action == "exclude" and r.field == "record_id"]
        candidates = list(dict.fromkeys([*cached, *stale, *rule_named,
                                         *(rid for rid, (s, _) in decided.items() if s == "excluded")]))
        for rid, verdict in self.verdicts(candidates).items():
            if verdict.excluded:
                out[rid] = verdict.reason
        return out

    # ============================================================================ decisions
    def decide(self, actor: str, record_ids: Iterable[str], status: str, reason: str | None = None) -> list[str]:
        """Approve, exclude (reason required) or reset (`pending`) records, in bulk. Returns the ids changed."""
        if status not in DECISIONS:
            raise CurationError(f"a decision is one of {', '.join(DECISIONS)}, not {status!r}")
        reason = (reason or "").strip() or None
        if status == "excluded" and not reason:
            raise CurationError("excluding a record needs a reason (librarians see it; readers never see the record)")
        ids = list(dict.fromkeys(normalise_record_id(r) for r in record_ids))
        self.require(actor, "librarian")
        if not ids:
            return []
        evaluated = self._evaluate(ids)
        dec = cs.curation_decisions
        changed: list[str] = []
        now = _now()
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            existing = {}
            for part in _chunks(ids):
                existing.update({r.record_id: r for r in conn.execute(select(dec).where(dec.c.record_id.in_(part)))})
            for rid in ids:
                old = existing.get(rid)
                before = {"status": old.status, "reason": old.reason} if old else {"status": "pending", "reason": None}
                after = {"status": status, "reason": reason if status != "approved" or reason else None}
                if before == after:
                    continue
                values = {"status": status, "reason": after["reason"], "decided_by": actor, "decided_at": now}
                if old is None:
                    conn.execute(insert(dec).values(record_id=rid, **values))
                else:
                    conn.execute(update(dec).where(dec.c.record_id == rid).values(**values))
                verb = {"approved": "record.approve", "excluded": "record.exclude", "pending": "record.reset"}[status]
                self._audit(conn, actor, verb, "record", rid, before, after)
                changed.append(rid)
            if status == "excluded":  # an excluded record is featured nowhere
                for part in _chunks(changed):
                    for pin in conn.execute(select(cs.curation_pins).where(cs.curation_pins.c.record_id.in_(part))):
                        conn.execute(cs.curation_pins.delete().where(and_(
                            cs.curation_pins.c.record_id == pin.record_id, cs.curation_pins.c.topic == pin.topic)))
                        self._audit(conn, actor, "record.unpin", "record", pin.record_id, {"topic": pin.topic}, None)
            flips = [rid for rid in changed
                     if _excluded(*evaluated[rid]) != _excluded(evaluated[rid][0], status, reason)]
            self._bump(conn, flips)
        self._relevance_cache = None
        return changed

    def approve(self, actor: str, record_ids: Iterable[str], reason: str | None = None) -> list[str]:
        return self.decide(actor, record_ids, "approved", reason)

    def exclude(self, actor: str, record_ids: Iterable[str], reason: str) -> list[str]:
        return self.decide(actor, record_ids, "excluded", reason)

    def reset(self, actor: str, record_ids: Iterable[str]) -> list[str]:
        return self.decide(actor, record_ids, "pending")

    def pin(self, actor: str, record_id: str, topic: str) -> None:
        """Feature a record in a topic's digests. An excluded record cannot be pinned."""
        rid, topic = normalise_record_id(record_id), " ".join(topic.split())
        if not topic:
            raise CurationError("pinning needs a topic")
        verdict = self.verdict(rid)
        if verdict.excluded:
            raise CurationError(f"{rid} is excluded ({verdict.reason}); approve it before pinning")
        if not self.catalog.exists(rid):
            raise RecordNotFound(f"no record {rid!r} in the catalog")
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            p = cs.curation_pins
            if conn.execute(select(p.c.record_id).where(and_(p.c.record_id == rid, p.c.topic == topic))).first():
                return
            conn.execute(insert(p).values(record_id=rid, topic=topic, pinned_by=actor, pinned_at=_now()))
            self._audit(conn, actor, "record.pin", "record", rid, None, {"topic": topic})

    def unpin(self, actor: str, record_id: str, topic: str) -> None:
        rid = normalise_record_id(record_id)
        p = cs.curation_pins
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            if conn.execute(p.delete().where(and_(p.c.record_id == rid, p.c.topic == topic))).rowcount:
                self._audit(conn, actor, "record.unpin", "record", rid, {"topic": topic}, None)

    def pinned(self, topic: str) -> list[str]:
        """Record ids pinned to `topic`, oldest pin first, excluding any that are excluded now."""
        p = cs.curation_pins
        with self.engine.connect() as conn:
            ids = conn.execute(select(p.c.record_id).where(p.c.topic == topic).order_by(p.c.pinned_at, p.c.record_id)
                               ).scalars().all()
        return self.visible(ids)

    def pins(self) -> dict[str, list[str]]:
        """Every topic with its pinned, visible record ids."""
        p = cs.curation_pins
        with self.engine.connect() as conn:
            rows = conn.execute(select(p.c.topic, p.c.record_id).order_by(p.c.topic, p.c.pinned_at)).all()
        visible = set(self.visible([r.record_id for r in rows]))
        out: dict[str, list[str]] = {}
        for topic, rid in rows:
            if rid in visible:
                out.setdefault(topic, []).append(rid)
        return out

    def tag(self, actor: str, record_ids: Iterable[str], tag: str) -> list[str]:
        tag = " ".join(tag.split()).lower()
        if not tag:
            raise CurationError("a tag cannot be empty")
        ids = [normalise_record_id(r) for r in record_ids]
        done = []
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            t = cs.curation_tags
            have = set(conn.execute(select(t.c.record_id).where(and_(t.c.tag == tag, t.c.record_id.in_(ids))))
                       .scalars())
            for rid in dict.fromkeys(ids):
                if rid in have:
                    continue
                conn.execute(insert(t).values(record_id=rid, tag=tag, tagged_by=actor, tagged_at=_now()))
                self._audit(conn, actor, "record.tag", "record", rid, None, {"tag": tag})
                done.append(rid)
        return done

    def untag(self, actor: str, record_id: str, tag: str) -> None:
        rid, tag = normalise_record_id(record_id), " ".join(tag.split()).lower()
        t = cs.curation_tags
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            if conn.execute(t.delete().where(and_(t.c.record_id == rid, t.c.tag == tag))).rowcount:
                self._audit(conn, actor, "record.untag", "record", rid, {"tag": tag}, None)

    def note(self, actor: str, record_id: str, text: str) -> int:
        rid = normalise_record_id(record_id)
        text = text.strip()
        if not text:
            raise CurationError("a note cannot be empty")
        with self.engine.begin() as conn:
            self._require_in(conn, actor, "librarian")
            note_id = conn.execute(insert(cs.curation_notes).values(record_id=rid, author=actor, text=text,
                                                                    created_at=_now())).inserted_primary_key[0]
            self._audit(conn, actor, "record.note", "record", rid, None, {"note_id": note_id, "text": text})
        return int(note_id)

    def record(self, record_id: str) -> dict[str, Any]:
        """Everything a librarian sees about a record: catalog state, decision, verdict, pins, tags,
        notes, linked trials/publications (with their titles and verdicts), and its audit trail."""
        rid = normalise_record_id(record_id)
        info = self.catalog.get(rid)
        dec = cs.curation_decisions
        with self.engine.connect() as conn:
            decision = conn.execute(select(dec).where(dec.c.record_id == rid)).first()
            pins = conn.execute(select(cs.curation_pins).where(cs.curation_pins.c.record_id == rid)).all()
            tags = conn.execute(select(cs.curation_tags).where(cs.curation_tags.c.record_id == rid)
                                .order_by(cs.curation_tags.c.tag)).all()
            notes = conn.execute(select(cs.curation_notes).where(cs.curation_notes.c.record_id == rid)
                                 .order_by(cs.curation_notes.c.id)).all()
            linked_ids = list(dict.fromkeys([*info["trials"], *info["publications"]]))
            titles = dict(conn.execute(select(ct.records.c.id, ct.records.c.title).where(
                ct.records.c.id.in_(linked_ids))).all()) if linked_ids else {}
        link_verdicts = self.verdicts(linked_ids)
        linked = [{"record_id": lid, "title": titles.get(lid), "in_catalog": lid in titles,
                   "excluded": link_verdicts[lid].excluded} for lid in linked_ids]
        return {
            **info,
            "decision": dict(decision._mapping) if decision else None,
            "verdict": self.verdict(rid).as_dict(),
            "pins": [p.topic for p in pins], "tags": [t.tag for t in tags],
            "notes": [dict(n._mapping) for n in notes], "linked": linked,
            "audit": self.audit_log(entity="record", entity_id=rid, limit=200),
        }

    # ============================================================================ queue
    def queue(self, *, sort: str = "newest", limit: int = 50, offset: int = 0, kind: str | None = None,
              text: str | None = None) -> QueuePage:
        """Records awaiting review: active, not retracted, no decision yet, not excluded by the rules.
        `text`: only records whose title or stored text (abstract, MeSH, authors…) contains every word of it,
        ignoring case."""
        if sort not in SORTS:
            raise CurationError(f"sort by one of {', '.join(SORTS)}, not {sort!r}")
        rec, dec, vers, runs = ct.records, cs.curation_decisions, ct.record_versions, ct.ingest_runs
        query = (select(rec.c.id, rec.c.kind, rec.c.title, rec.c.published, rec.c.first_seen,
                        rec.c.current_version, runs.c.search_name)
                 .select_from(rec.outerjoin(dec, dec.c.record_id == rec.c.id)
                              .outerjoin(vers, and_(vers.c.record_id == rec.c.id,
                                                    vers.c.version == rec.c.current_version))
                              .outerjoin(runs, runs.c.id == vers.c.run_id))
                 .where(rec.c.state == "active").where(rec.c.retracted.is_(False))
                 .where(or_(dec.c.record_id.is_(None), dec.c.status == "pending"))
                 .order_by(rec.c.first_seen.desc(), rec.c.id))
        if kind:
            query = query.where(rec.c.kind == kind)
        for word in (text or "").split():
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(or_(rec.c.title.ilike(pattern, escape="\\"),
                                    cast(vers.c.fields, Text).ilike(pattern, escape="\\")))
        if sort == "published":
            query = query.order_by(None).order_by(rec.c.published.is_(None), rec.c.published.desc(), rec.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        verdicts = self.verdicts([r.id for r in rows])
        rows = [r for r in rows if not verdicts[r.id].excluded]
        scores = self._evidence_scores(rows) if self.evidence is not None else {}
        model = self._relevance_model()
        relevance: dict[str, float] = {}
        if model is not None:
            window = rows[:RELEVANCE_WINDOW] if sort == "relevance" else rows[offset:offset + limit]
            fields = self._fields([r.id for r in window])
            relevance = {rid: model.score(tokens(model_from_fields(f))) for rid, f in fields.items()}
        if sort == "relevance" and model is not None:
            rows = sorted(rows, key=lambda r: (-relevance.get(r.id, -1.0),))
        elif sort == "evidence":
            rows = sorted(rows, key=lambda r: (scores.get(r.id, (None, 99))[1] or 99,))
        page = rows[offset:offset + limit]
        if model is not None and sort != "relevance":
            missing = [r.id for r in page if r.id not in relevance]
            for rid, f in self._fields(missing).items():
                relevance[rid] = model.score(tokens(model_from_fields(f)))
        items = [QueueItem(r.id, r.kind, r.title, r.published, r.first_seen, r.search_name,
                           scores.get(r.id, (None, None))[0], scores.get(r.id, (None, None))[1],
                           relevance.get(r.id)) for r in page]
        return QueuePage(items, len(rows), sort, model is not None)

    def _evidence_scores(self, rows: Sequence[Any]) -> dict[str, tuple[str | None, int | None]]:
        sc = cs.curation_scores
        ids = [r.id for r in rows]
        versions = {r.id: r.current_version for r in rows}
        out: dict[str, tuple[str | None, int | None]] = {}
        with self.engine.connect() as conn:
            for part in _chunks(ids):
                for row in conn.execute(select(sc).where(sc.c.record_id.in_(part))):
                    if row.version == versions[row.record_id]:
                        out[row.record_id] = (row.evidence_level, row.evidence_rank)
        missing = [rid for rid in ids if rid not in out][:EVIDENCE_PER_CALL]
        if not missing or self.evidence is None:
            return out
        computed = {}
        for rid, fields in self._fields(missing).items():
            try:
                result = self.evidence(model_from_fields(fields))
            except Exception:  # grading is advisory here: a record it cannot grade sorts last
                log.warning("could not grade %s for the queue", rid, exc_info=True)
                result = None
            computed[rid] = result or (None, None)
        now = _now()
        with self.engine.begin() as conn:
            upsert(conn, sc, [{"record_id": rid, "version": versions[rid], "evidence_level": level,
                               "evidence_rank": rank, "computed_at": now} for rid, (level, rank) in computed.items()],
                   ["record_id"])
        out.update(computed)
        return out

    def _relevance_model(self) -> RelevanceModel | None:
        dec = cs.curation_decisions
        with self.engine.connect() as conn:
            key = conn.execute(select(func.count(), func.max(dec.c.decided_at))).one()
            if self._relevance_cache is not None and self._relevance_cache[0] == tuple(key):
                return self._relevance_cache[1]
            rows = conn.execute(select(dec.c.record_id, dec.c.status).where(
                dec.c.status.in_(("approved", "excluded")))).all()
        labels = {r.record_id: r.status == "approved" for r in rows}
        fields = self._fields(list(labels))
        model = RelevanceModel.train((tokens(model_from_fields(f)), labels[rid]) for rid, f in fields.items())
        self._relevance_cache = (tuple(key), model)
        return model

    # ============================================================================ import / export
    def import_ids(self, actor: str, text: str, action: str, reason: str | None = None) -> ImportReport:
        """Approve or exclude every PMID/NCT id in `text`. Ids not yet in the catalog get the decision too
        (it applies when they arrive) and are listed as such."""
        if action not in ("approve", "exclude"):
            raise CurationError(f"import either approves or excludes, not {action!r}")
        parsed = exports.parse_id_list(text)
        status = "approved" if action == "approve" else "excluded"
        self.decide(actor, parsed.ids, status, reason)
        known = set(self._versions(parsed.ids))
        return ImportReport(action, parsed.ids, [rid for rid in parsed.ids if rid not in known], parsed.invalid)

    def curated(self, *, status: str = "approved", tag: str | None = None, topic: str | None = None,
                record_ids: Sequence[str] | None = None) -> list[str]:
        """The curated set: records with this decision (and tag/topic), visible, in the catalog, by id."""
        dec, rec = cs.curation_decisions, ct.records
        query = (select(dec.c.record_id).join(rec, rec.c.id == dec.c.record_id)
                 .where(rec.c.current_version > 0).order_by(dec.c.record_id))
        if status != "any":
            query = query.where(dec.c.status == status)
        if tag:
            query = query.where(dec.c.record_id.in_(select(cs.curation_tags.c.record_id).where(
                cs.curation_tags.c.tag == " ".join(tag.split()).lower())))
        if topic:
            query = query.where(dec.c.record_id.in_(select(cs.curation_pins.c.record_id).where(
                cs.curation_pins.c.topic == topic)))
        if record_ids is not None:
            query = query.where(dec.c.record_id.in_([normalise_record_id(r) for r in record_ids]))
        with self.engine.connect() as conn:
            ids = conn.execute(query).scalars().all()
        return self.visible(ids) if status != "excluded" else list(ids)

    def export(self, fmt: str, record_ids: Sequence[str]) -> tuple[str, list[str]]:
        """(file text, ids left out) for these records in RIS, MEDLINE (.nbib), CSV, BibTeX or CSL-JSON, with
        the librarian's tags and notes (RIS `N1`, MEDLINE `GN`, BibTeX/CSL `note`, the CSV `notes` column)."""
        models = [self.catalog.get_record(rid) for rid in record_ids]
        return exports.render(fmt, models, self._extras(record_ids))

    def _extras(self, record_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {rid: {"tags": [], "topics": [], "notes": []} for rid in record_ids}
        with self.engine.connect() as conn:
            for part in _chunks(list(record_ids)):
                for r in conn.execute(select(cs.curation_tags).where(cs.curation_tags.c.record_id.in_(part))
                                      .order_by(cs.curation_tags.c.tag)):
                    out[r.record_id]["tags"].append(r.tag)
                for r in conn.execute(select(cs.curation_pins).where(cs.curation_pins.c.record_id.in_(part))
                                      .order_by(cs.curation_pins.c.topic)):
                    out[r.record_id]["topics"].append(r.topic)
                for r in conn.execute(select(cs.curation_decisions).where(
                        cs.curation_decisions.c.record_id.in_(part))):
                    out[r.record_id]["decision"] = r.status
                for r in conn.execute(select(cs.curation_notes).where(cs.curation_notes.c.record_id.in_(part))
                                      .order_by(cs.curation_notes.c.id)):  # the librarian's work goes out too
                    out[r.record_id]["notes"].append(f"{r.author} {r.created_at:%Y-%m-%d}: {r.text}")
        return out

    # ============================================================================ helpers
    def _versions(self, ids: Sequence[str]) -> dict[str, int]:
        rec = ct.records
        out: dict[str, int] = {}
        with self.engine.connect() as conn:
            for part in _chunks(list(ids)):
                out.update(conn.execute(select(rec.c.id, rec.c.current_version).where(rec.c.id.in_(part))).all())
        return out

    def _fields(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Current-version fields of these records (those that have one)."""
        rec, vers = ct.records, ct.record_versions
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for part in _chunks(list(ids)):
                out.update(conn.execute(select(vers.c.record_id, vers.c.fields).join(rec, and_(
                    rec.c.id == vers.c.record_id, rec.c.current_version == vers.c.version))
                    .where(vers.c.record_id.in_(part))).all())
        return out


def _excluded(rules_part: Verdict, status: str | None, reason: str | None) -> bool:
    return decision_verdict(status, reason, rules_part).excluded


def _cached_verdict(row: Any, rules_by_id: dict[int, Rule]) -> Verdict:
    if not row.excluded:
        return KEPT
    rules = [rules_by_id[i] for i in (row.rule_ids or ()) if i in rules_by_id]
    if rules and all(r.action == "include" for r in rules):
        return allow_list_verdict(rules[0].field, rules)
    if rules:
        return exclude_verdict(rules)
    return Verdict(True, "rule", "excluded by rules", tuple(row.rule_ids or ()))


def _search_view(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("name", "source", "query", "params", "schedule", "active", "owner", "watermark")
    return {k: row.get(k) for k in keys}


def _rule_view(rule: Rule) -> dict[str, Any]:
    return {"action": rule.action, "field": rule.field, "value": rule.value, "reason": rule.reason,
            "author": rule.author, "active": rule.active}


def _check_new_search(catalog: Catalog, name: str, source: str) -> None:
    """A new saved search's name and source, checked before anything is written (the catalog's unique
    constraint still catches a race and raises the same `AlreadyExists`)."""
    access.check_search_name(name)
    if source not in ("pubmed", "ctgov"):
        raise CurationError(f"unknown source {source!r}; choose pubmed or ctgov")
    try:
        catalog.get_search(name)
    except RecordNotFound:
        return
    raise AlreadyExists(f"a saved search named {name!r} already exists; remove it or pick another name")


def _check_cron(schedule: str | None) -> None:
    if not schedule:
        return
    from apscheduler.triggers.cron import CronTrigger
    try:
        CronTrigger.from_crontab(schedule)
    except ValueError as exc:
        raise CurationError(f"invalid cron expression {schedule!r}: {exc}") from exc


def evaluate_batch(catalog: Catalog, items: Iterable[Any]) -> dict[str, Verdict]:
    """Ingest-time hook for the pipeline: call after each committed batch with the batch's items
    (ParsedItem or record ids). Flags the records the current rules exclude, so the queue and the
    index see them at once; read-time evaluation covers any batch this was not called for."""
    ids = [i if isinstance(i, str) else i.record.record_id for i in items]
    return Curation(catalog).evaluate_batch(ids)
