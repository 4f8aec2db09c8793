"""The catalog: canonical records with versions, saved searches with watermarks, and ingest runs.

Invariants it keeps (ARCHITECTURE.md): a record is identified by its id, a revision is a new
version never a duplicate, ingesting the same input twice changes no content, and a batch is
committed whole or not at all — so a crash mid-batch is repaired by simply running again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

from ingest.catalog import schema as t
from ingest.catalog.describe import changes_between, describe, is_deletion, is_partial_trial, merge_partial
from ingest.catalog.dialect import serialize_change_seq, with_driver
from ingest.catalog.migrations import migrate
from ingest.errors import AlreadyExists, CatalogError, InvalidRecord, MalformedPayload, RecordNotFound
from ingest.records import Article, Trial, Unreadable
from ingest.records.common import canonical_json
from ingest.source import ParsedItem

# What one record's bad content raises while the catalog reads it (describe, hash, change list):
# InvalidRecord (a year 0 date), MalformedPayload (a partial CT.gov study that no longer parses),
# ValueError/ArithmeticError (pydantic and the standard library on impossible values). Such a
# record is quarantined; anything else (a bug, the database) still fails the whole batch.
POISON_ERRORS: tuple[type[Exception], ...] = (MalformedPayload, ValueError, ArithmeticError)
# The largest record the catalog stores, as its canonical JSON. Real PubMed records are < 100 kB and CT.gov
# studies with results a few MB at most; a 48 MB "abstract" (six 8 MB sections, each under libxml2's per-node
# limit) is an attack or a broken upstream, and indexing it alone took minutes and 2 GB: it is quarantined.
MAX_RECORD_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Quarantined:
    """A record the catalog could not store, kept raw in `quarantine` with the reason."""

    record_id: str
    error: str


@dataclass
class BatchOutcome:
    """What one committed batch did: counts by outcome (new, revised, unchanged, stale, deleted,
    quarantined) and the records put in quarantine."""

    counts: Counter[str] = field(default_factory=Counter)
    quarantined: list[Quarantined] = field(default_factory=list)


@dataclass(frozen=True)
class QuarantineEntry:
    """A row of the quarantine, as `records quarantine` and the retry read it."""

    record_id: str
    source: str
    raw_format: str
    error: str
    attempts: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    run_id: int | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def compress(raw: bytes) -> bytes:
    return zlib.compress(raw, 1)  # level 1: most of the size win at a fraction of the CPU


def decompress(blob: bytes) -> bytes:
    return zlib.decompress(blob)


def model_from_fields(fields: dict[str, Any]) -> Article | Trial:
    """Rebuild the typed record from stored fields (the `kind` field says which model)."""
    kind = fields.get("kind")
    if kind == "article":
        return Article.model_validate(fields)
    if kind == "trial":
        return Trial.model_validate(fields)
    raise CatalogError(f"stored record has unknown kind {kind!r}")


class Catalog:
    """A handle on one catalog database. Use as a context manager or call `close()`."""

    def __init__(self, url: str):
        url = self.url = with_driver(url)
        if url.startswith("sqlite:///"):
            folder = Path(url.removeprefix("sqlite:///")).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file where the folder should be, no permission, a full disk
                raise CatalogError(f"cannot create the catalog's folder {folder}: {exc.strerror or exc}. "
                                   "Point ONCOLIT_DATA_DIR (or ONCOLIT_CATALOG_URL) at a writable folder.") from exc
        # A server's connections can be dropped under a long-lived process (a restart, an idle timeout):
        # pre-ping replaces them instead of failing the next request. SQLite files need none of it.
        server = not url.startswith("sqlite")
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=server)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            with self.engine.begin() as conn:
                migrate(conn)
        except DatabaseError as exc:  # OperationalError (server down, locked), or a file that is no database
            shown = self.engine.url.render_as_string(hide_password=True)  # never a password in an error
            self.engine.dispose()
            hint = ("is the database server up?" if isinstance(exc, OperationalError) else
                    "the file is damaged or not a catalog: restore it from a backup or move it away")
            raise CatalogError(f"cannot open the catalog at {shown}: {exc.orig}. "
                               f"Check ONCOLIT_CATALOG_URL / ONCOLIT_DATA_DIR ({hint}).") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ---------------------------------------------------------------- ingest
    def ingest_batch(self, items: Sequence[ParsedItem], run_id: int | None = None) -> Counter[str]:
        """Upsert a batch in one transaction. Returns counts: new, revised, unchanged, stale, deleted,
        quarantined (see `ingest`)."""
        return self.ingest(items, run_id).counts

    def ingest(self, items: Sequence[ParsedItem], run_id: int | None = None) -> BatchOutcome:
        """Upsert a batch in one transaction; a record whose content cannot be stored (`POISON_ERRORS`)
        goes to the quarantine with its raw payload and error, and the rest of the batch is stored.

        Decisions are made in Python against the rows read up front, then written with one
        executemany per statement kind: the catalog must keep up with the parser (see benchmarks/).
        """
        outcome = BatchOutcome()
        if not items:
            return outcome
        now = _now()
        try:
            with self.engine.begin() as conn:
                serialize_change_seq(conn)  # PostgreSQL: writers take turns, so seqs follow commit order
                seq = (conn.execute(select(func.coalesce(func.max(t.records.c.change_seq), 0))).scalar_one()
                       or 0) + 1
                ids = list({item.record.record_id for item in items})
                plan = _Plan(conn, now, seq, run_id, {row.id: row for row in _fetch_records(conn, ids)},
                             _retraction_targets(conn, ids))
                for item in items:
                    try:
                        outcome.counts[plan.add(item)] += 1
                    except POISON_ERRORS as exc:
                        plan.quarantine(item, exc)
                        outcome.counts["quarantined"] += 1
                plan.write()
        except OperationalError as exc:  # a full disk, an I/O error, a dropped server: the batch rolled back
            raise CatalogError(f"the catalog could not store a batch of {len(items)} records: {exc.orig}. Nothing "
                               "of that batch was written; free disk space (or check the database server) and "
                               "run again.") from exc
        outcome.quarantined = [Quarantined(rid, row["error"]) for rid, row in plan.quarantined.items()]
        return outcome

    def quarantine(self, source: str | None = None, limit: int | None = None) -> list[QuarantineEntry]:
        """Quarantined records, oldest first (without their payloads; see `quarantined_raw`)."""
        q = t.quarantine.c
        query = select(q.record_id, q.source, q.raw_format, q.error, q.attempts, q.first_seen, q.last_seen,
                       q.run_id).order_by(q.first_seen, q.record_id)
        if source:
            query = query.where(q.source == source)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [QuarantineEntry(*row) for row in conn.execute(query)]

    def quarantined_raw(self, record_id: str) -> tuple[bytes, str]:
        """The kept payload of a quarantined record and its format."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.quarantine.c.raw, t.quarantine.c.raw_format).where(
                t.quarantine.c.record_id == record_id)).first()
        if row is None:
            raise RecordNotFound(f"{record_id!r} is not in the quarantine; see `oncolit records quarantine`")
        return decompress(row.raw), row.raw_format

    # ---------------------------------------------------------------- runs
    def start_run(self, source: str, mode: str, search_name: str | None = None,
                  window: tuple[dt.date, dt.date] | None = None) -> int:
        """Record a new run as `running`; first mark runs whose process died as `interrupted`."""
        with self.engine.begin() as conn:
            self._close_abandoned_runs(conn)
            result = conn.execute(insert(t.ingest_runs).values(
                source=source, mode=mode, search_name=search_name, started_at=_now(), status="running",
                counts={}, window_start=window[0] if window else None, window_end=window[1] if window else None,
                owner=_run_owner()))
            key = result.inserted_primary_key
            if key is None:
                raise CatalogError("the database gave the new ingest run no id")
            return int(key[0])

    def _close_abandoned_runs(self, conn: Connection) -> None:
        """A run killed outright (SIGKILL, power loss) never recorded its outcome and would show as
        `running` for ever. Its batches are committed or not, whole, so only the row needs mending."""
        rows = conn.execute(select(t.ingest_runs.c.id, t.ingest_runs.c.owner).where(
            t.ingest_runs.c.status == "running")).all()
        for row in rows:
            if _run_abandoned(row.owner):
                conn.execute(update(t.ingest_runs).where(t.ingest_runs.c.id == row.id).values(
                    status="interrupted", finished_at=_now(),
                    error="the process running it ended without recording an outcome (killed?); "
                          "its committed batches are kept and a later run redid the rest"))

    def finish_run(self, run_id: int, status: str, counts: dict[str, int], error: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(t.ingest_runs).where(t.ingest_runs.c.id == run_id).values(
                status=status, counts=dict(counts), error=error, finished_at=_now()))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.ingest_runs).order_by(t.ingest_runs.c.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    # ---------------------------------------------------------------- saved searches
    def add_search(self, name: str, source: str, query: str, params: dict[str, Any] | None = None,
                   schedule: str | None = None, owner: str | None = None, active: bool = True,
                   watermark: dt.date | None = None) -> dict[str, Any]:
        now = _now()
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.saved_searches).values(
                    name=name, source=source, query=query, params=params or {}, schedule=schedule,
                    owner=owner, active=active, watermark=watermark, created_at=now, updated_at=now))
        except IntegrityError as exc:
            raise AlreadyExists(f"a saved search named {name!r} already exists; remove it or pick another name") from exc
        return self.get_search(name)

    def get_search(self, name: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.saved_searches).where(t.saved_searches.c.name == name)).first()
        if row is None:
            raise RecordNotFound(f"no saved search named {name!r}; see `oncolit searches list`")
        return dict(row._mapping)

    def list_searches(self, source: str | None = None) -> list[dict[str, Any]]:
        query = select(t.saved_searches).order_by(t.saved_searches.c.name)
        if source:
            query = query.where(t.saved_searches.c.source == source)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def remove_search(self, name: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(delete(t.saved_searches).where(t.saved_searches.c.name == name)).rowcount == 0:
                raise RecordNotFound(f"no saved search named {name!r}; see `oncolit searches list`")

    def set_watermark(self, name: str, day: dt.date) -> None:
        """Move a search's watermark; call only after every record up to `day` is committed."""
        with self.engine.begin() as conn:
            conn.execute(update(t.saved_searches).where(t.saved_searches.c.name == name).values(
                watermark=day, updated_at=_now()))

    # ---------------------------------------------------------------- reading
    def exists(self, record_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(t.records.c.id).where(t.records.c.id == record_id)).first() is not None

    def get(self, record_id: str) -> dict[str, Any]:
        """Everything about a record: state, current fields, versions with their changes, links."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.records).where(t.records.c.id == record_id)).first()
            if row is None:
                raise RecordNotFound(f"no record {record_id!r} in the catalog "
                                     "(ids look like pubmed:12345678 or ctgov:NCT01234567)")
            versions = conn.execute(
                select(t.record_versions.c.version, t.record_versions.c.content_hash,
                       t.record_versions.c.source_updated, t.record_versions.c.changes,
                       t.record_versions.c.first_seen, t.record_versions.c.last_seen,
                       t.record_versions.c.raw_format)
                .where(t.record_versions.c.record_id == record_id).order_by(t.record_versions.c.version)).all()
            fields = None
            if row.current_version > 0:
                fields = conn.execute(select(t.record_versions.c.fields).where(and_(
                    t.record_versions.c.record_id == record_id,
                    t.record_versions.c.version == row.current_version))).scalar_one()
            links = self._links(conn, record_id)
        return {
            "id": row.id, "source": row.source, "kind": row.kind, "version": row.current_version,
            "state": row.state, "retracted": row.retracted, "deleted": row.state == "deleted",
            "title": row.title, "published": row.published, "first_seen": row.first_seen,
            "last_seen": row.last_seen, "updated_at": row.updated_at, "deleted_at": row.deleted_at,
            "fields": fields, "versions": [dict(v._mapping) for v in versions], **links,
        }

    def _links(self, conn: Connection, record_id: str) -> dict[str, Any]:
        rows = conn.execute(select(t.record_links).where(or_(
            t.record_links.c.src == record_id, t.record_links.c.dst == record_id))).all()
        trials, publications, retractions, related = set(), set(), set(), []
        for r in rows:
            other = r.dst if r.src == record_id else r.src
            if other.startswith("ctgov:") and record_id.startswith("pubmed:"):
                trials.add(other)
            elif other.startswith("pubmed:") and record_id.startswith("ctgov:"):
                publications.add(other)
            if (r.kind == "retracts" and r.dst == record_id) or (r.kind == "retracted_by" and r.src == record_id):
                retractions.add(other)
            related.append({"src": r.src, "dst": r.dst, "kind": r.kind, "detail": r.detail})
        return {"trials": sorted(trials), "publications": sorted(publications),
                "retraction_notices": sorted(retractions), "links": related}

    def get_record(self, record_id: str, version: int | None = None) -> Article | Trial:
        """The typed record (current version unless `version` is given)."""
        with self.engine.connect() as conn:
            if version is None:
                version = conn.execute(select(t.records.c.current_version).where(
                    t.records.c.id == record_id)).scalar_one_or_none()
            fields = None if not version else conn.execute(select(t.record_versions.c.fields).where(and_(
                t.record_versions.c.record_id == record_id, t.record_versions.c.version == version))).scalar_one_or_none()
        if fields is None:
            raise RecordNotFound(f"no stored version of {record_id!r}")
        return model_from_fields(fields)

    def raw(self, record_id: str, version: int) -> bytes:
        with self.engine.connect() as conn:
            blob = conn.execute(select(t.record_versions.c.raw).where(and_(
                t.record_versions.c.record_id == record_id, t.record_versions.c.version == version))).scalar_one_or_none()
        if blob is None:
            raise RecordNotFound(f"no stored version {version} of {record_id!r}")
        return decompress(blob)

    def changed_since(self, seq: int, batch_size: int = 500,
                      after_id: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Records after a position in (change_seq, id) order, in batches (for derived stores).

        Without `after_id`: records whose change_seq is above `seq`. With it: records after the pair
        (`seq`, `after_id`), i.e. also the rest of seq `seq` — one ingest batch shares one change_seq and
        is usually larger than a consumer's step, so a consumer that stopped mid-seq resumes exactly
        where it stopped. A record that changes later gets a higher seq than any existing one, so it
        is never behind a saved position.
        """
        last_seq, last_id = seq, "" if after_id is None else after_id
        floor = seq if after_id is None else seq - 1
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(t.records.c.id, t.records.c.current_version, t.records.c.state,
                           t.records.c.retracted, t.records.c.change_seq)
                    .where(or_(t.records.c.change_seq > last_seq,
                               and_(t.records.c.change_seq == last_seq, t.records.c.id > last_id)))
                    .where(t.records.c.change_seq > floor)
                    .order_by(t.records.c.change_seq, t.records.c.id).limit(batch_size)).all()
            if not rows:
                return
            yield [dict(r._mapping) for r in rows]
            last_seq, last_id = rows[-1].change_seq, rows[-1].id

    def max_change_seq(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(t.records.c.change_seq), 0))).scalar_one() or 0

    def stats(self) -> dict[str, Any]:
        """Counts by source and state (active, deleted, retracted) and of versions."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.records.c.source, t.records.c.state, t.records.c.retracted,
                                       func.count()).group_by(t.records.c.source, t.records.c.state,
                                                              t.records.c.retracted)).all()
            versions: dict[str, int] = dict(conn.execute(select(t.records.c.source, func.count()).select_from(
                t.record_versions.join(t.records, t.records.c.id == t.record_versions.c.record_id))
                .group_by(t.records.c.source)).all())
            links = conn.execute(select(func.count()).select_from(t.record_links)).scalar_one()
            quarantined: dict[str, int] = {
                source: n for source, n in conn.execute(select(t.quarantine.c.source, func.count())
                                                        .group_by(t.quarantine.c.source))}
        empty = {"records": 0, "active": 0, "deleted": 0, "retracted": 0, "versions": 0}
        by_source: dict[str, dict[str, int]] = {src: dict(empty) for src in ("pubmed", "ctgov")}
        for source, state, retracted, n in rows:
            entry = by_source.setdefault(source, dict(empty))
            entry["records"] += n
            entry[state] += n
            if retracted and state == "active":
                entry["retracted"] += n
        for source, n in versions.items():
            by_source.setdefault(source, dict(empty))["versions"] = n
        totals = {key: sum(s[key] for s in by_source.values())
                  for key in ("records", "active", "deleted", "retracted", "versions")}
        return {"total": totals, "by_source": dict(sorted(by_source.items())), "links": links,
                "quarantined": {"total": sum(quarantined.values()), "by_source": dict(sorted(quarantined.items()))}}

    def snapshot(self) -> dict[str, Any]:
        """Content of the catalog without timestamps: equal snapshots mean equal catalogs."""
        with self.engine.connect() as conn:
            recs = conn.execute(select(t.records.c.id, t.records.c.current_version, t.records.c.content_hash,
                                       t.records.c.state, t.records.c.retracted).order_by(t.records.c.id)).all()
            vers = conn.execute(select(t.record_versions.c.record_id, t.record_versions.c.version,
                                       t.record_versions.c.content_hash).order_by(
                t.record_versions.c.record_id, t.record_versions.c.version)).all()
            links = conn.execute(select(t.record_links.c.src, t.record_links.c.dst, t.record_links.c.kind)
                                 .order_by(t.record_links.c.src, t.record_links.c.dst, t.record_links.c.kind)).all()
        return {"records": [tuple(r) for r in recs], "versions": [tuple(v) for v in vers],
                "links": [tuple(link) for link in links]}

    def iter_records(self, ids: Iterable[str] | None = None, *, active_only: bool = True,
                     source: str | None = None) -> Iterator[tuple[dict[str, Any], Article | Trial]]:
        """(row, typed record) for current versions — the read path for index, synthesis, eval."""
        query = (select(t.records, t.record_versions.c.fields)
                 .join(t.record_versions, and_(t.record_versions.c.record_id == t.records.c.id,
                                               t.record_versions.c.version == t.records.c.current_version))
                 .order_by(t.records.c.id))
        if active_only:
            query = query.where(t.records.c.state == "active")
        if source:
            query = query.where(t.records.c.source == source)
        id_list = list(ids) if ids is not None else None
        chunks = [id_list[i:i + 500] for i in range(0, len(id_list), 500)] if id_list is not None else [None]
        for chunk in chunks:
            q = query.where(t.records.c.id.in_(chunk)) if chunk is not None else query
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            for row in rows:
                mapping = dict(row._mapping)
                fields = mapping.pop("fields")
                yield mapping, model_from_fields(fields)


class _Plan:
    """The writes one batch makes, decided record by record and then flushed in bulk."""

    def __init__(self, conn: Connection, now: dt.datetime, seq: int, run_id: int | None,
                 current: dict[str, Any], retraction_targets: set[str]):
        self.conn, self.now, self.seq, self.run_id = conn, now, seq, run_id
        self.current = current
        self.retraction_targets = retraction_targets
        self.pending_fields: dict[str, dict[str, Any]] = {}  # versions written earlier in this batch
        self.pending_raw: dict[str, bytes] = {}
        self.new_records: dict[str, dict[str, Any]] = {}
        self.record_updates: dict[str, dict[str, Any]] = {}
        self.versions: list[dict[str, Any]] = []
        self.touched_versions: dict[tuple[str, int], None] = {}
        self.links: dict[str, list[dict[str, Any]]] = {}
        self.retracts: set[str] = set()
        self.quarantined: dict[str, dict[str, Any]] = {}  # record id -> quarantine row
        self.recovered: set[str] = set()  # stored in this batch: any quarantine row of theirs is resolved

    def quarantine(self, item: ParsedItem, exc: Exception) -> None:
        """Keep a record that cannot be stored, raw, with its error. `add` raises before it changes
        the plan, so nothing of the record is half-planned."""
        rid = item.record.record_id
        error = str(exc) if isinstance(exc, MalformedPayload) else f"{type(exc).__name__}: {exc}"
        self.quarantined[rid] = dict(
            record_id=rid, source=rid.split(":", 1)[0], raw=compress(item.raw), raw_format=item.raw_format,
            raw_sha256=hashlib.sha256(item.raw).hexdigest(), error=error[:2000], first_seen=self.now,
            last_seen=self.now, run_id=self.run_id)
        self.recovered.discard(rid)

    def add(self, item: ParsedItem) -> str:
        """Plan one item; returns its outcome. Raises (one of `POISON_ERRORS`) only before the
        first change to the plan."""
        outcome = self._add(item)
        rid = item.record.record_id
        self.recovered.add(rid)
        self.quarantined.pop(rid, None)
        return outcome

    def _add(self, item: ParsedItem) -> str:
        rid = item.record.record_id
        if isinstance(item.record, Unreadable):  # the parser could not make a record of it: keep it raw
            raise MalformedPayload(item.record.error)
        row = self.current.get(rid)
        if is_deletion(item.record):
            return self._delete(rid, row)
        if row is not None and row.current_version > 0 and is_partial_trial(item):
            item = merge_partial(item, self._raw_of(rid, row))
        record = item.record
        meta = describe(record)
        fields = record.model_dump(mode="json")
        fields_json = canonical_json(fields)
        if len(fields_json) > MAX_RECORD_BYTES:
            raise InvalidRecord(f"{rid}: the record is {len(fields_json) / 1e6:.1f} MB of text, over the "
                                f"{MAX_RECORD_BYTES / 1e6:.1f} MB a record may hold; kept raw in quarantine "
                                "(see `oncolit records quarantine`)")
        digest = hashlib.sha256(fields_json.encode("utf-8")).hexdigest()
        retracted = meta.retracted or rid in self.retraction_targets or rid in self.retracts
        if row is not None and row.content_hash == digest and row.current_version > 0:
            self.touched_versions[(rid, row.current_version)] = None
            if row.state != "active" or row.retracted != retracted:
                self._set_record(rid, {"state": "active", "deleted_at": None, "retracted": retracted,
                                       "change_seq": self.seq, "last_seen": self.now})
                self.current[rid] = _RowView(rid, row.current_version, digest, "active", retracted,
                                             row.source_updated)
            else:
                self._set_record(rid, {"last_seen": self.now})
            return "unchanged"
        if row is not None and _is_stale(row.source_updated, meta.source_updated):
            return "stale"
        old_fields = self._fields_of(rid, row)
        changes = changes_between(old_fields, record)  # may raise: before the plan changes
        version = (row.current_version if row is not None else 0) + 1
        columns = dict(current_version=version, content_hash=digest, state="active", retracted=retracted,
                       title=meta.title, published=meta.published, source_updated=meta.source_updated,
                       last_seen=self.now, updated_at=self.now, deleted_at=None, change_seq=self.seq)
        if row is None and rid not in self.new_records:
            self.new_records[rid] = dict(id=rid, source=meta.source, kind=meta.kind, first_seen=self.now, **columns)
        else:
            self._set_record(rid, columns)
        self.versions.append(dict(
            record_id=rid, version=version, content_hash=digest, fields=fields_json, raw=compress(item.raw),
            raw_format=item.raw_format, source_updated=meta.source_updated,
            changes=changes, first_seen=self.now, last_seen=self.now,
            run_id=self.run_id))
        self.pending_fields[rid] = fields
        self.pending_raw[rid] = item.raw
        self.current[rid] = _RowView(rid, version, digest, "active", retracted, meta.source_updated)
        self.links[rid] = [{"src": rid, "dst": link.dst, "kind": link.kind, "detail": link.detail}
                           for link in meta.links]
        self.retracts.update(link.dst for link in meta.links if link.kind == "retracts")
        return "new" if row is None or row.current_version == 0 else "revised"

    def _raw_of(self, rid: str, row: Any) -> bytes:
        pending = self.pending_raw.get(rid)
        if pending is not None:
            return pending
        return decompress(self.conn.execute(select(t.record_versions.c.raw).where(and_(
            t.record_versions.c.record_id == rid,
            t.record_versions.c.version == row.current_version))).scalar_one())

    def _fields_of(self, rid: str, row: Any) -> dict[str, Any] | None:
        if rid in self.pending_fields:
            return self.pending_fields[rid]
        if row is None or row.current_version == 0:
            return None
        fields: dict[str, Any] = self.conn.execute(select(t.record_versions.c.fields).where(and_(
            t.record_versions.c.record_id == rid,
            t.record_versions.c.version == row.current_version))).scalar_one()
        return fields

    def _delete(self, rid: str, row: Any) -> str:
        if row is not None and row.state == "deleted":
            return "unchanged"
        if row is None and rid not in self.new_records:
            # A tombstone: the deletion is remembered even for a record we never saw.
            self.new_records[rid] = dict(
                id=rid, source=rid.split(":", 1)[0], kind="article", current_version=0, content_hash="",
                state="deleted", retracted=False, title="", published=None, source_updated=None,
                first_seen=self.now, last_seen=self.now, updated_at=self.now, deleted_at=self.now,
                change_seq=self.seq)
        else:
            self._set_record(rid, {"state": "deleted", "deleted_at": self.now, "last_seen": self.now,
                                   "updated_at": self.now, "change_seq": self.seq})
        self.current[rid] = _RowView(rid, row.current_version if row else 0, row.content_hash if row else "",
                                     "deleted", row.retracted if row else False,
                                     row.source_updated if row else None)
        return "deleted"

    def _set_record(self, rid: str, values: dict[str, Any]) -> None:
        if rid in self.new_records:
            self.new_records[rid].update(values)
        else:
            self.record_updates.setdefault(rid, {}).update(values)

    def write(self) -> None:
        conn = self.conn
        self._write_quarantine()
        if self.new_records:
            conn.execute(insert(t.records), list(self.new_records.values()))
        # One executemany per distinct column set (e.g. "last_seen only" for repeats).
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for rid, values in self.record_updates.items():
            groups.setdefault(tuple(sorted(values)), []).append({"b_id": rid, **values})
        for cols, rows in groups.items():
            conn.execute(update(t.records).where(t.records.c.id == bindparam("b_id"))
                         .values({c: bindparam(c) for c in cols}), rows)
        if self.versions:
            conn.execute(insert(t.record_versions), self.versions)
        if self.touched_versions:
            conn.execute(update(t.record_versions).where(and_(
                t.record_versions.c.record_id == bindparam("b_rid"),
                t.record_versions.c.version == bindparam("b_version"))).values(last_seen=self.now),
                [{"b_rid": rid, "b_version": v} for rid, v in self.touched_versions])
        if self.links:
            sources = list(self.links)
            for i in range(0, len(sources), 500):
                conn.execute(delete(t.record_links).where(t.record_links.c.src.in_(sources[i:i + 500])))
            rows = [link for links in self.links.values() for link in links]
            if rows:
                conn.execute(insert(t.record_links), rows)
        if self.retracts:
            targets = list(self.retracts)
            for i in range(0, len(targets), 500):
                conn.execute(update(t.records).where(and_(
                    t.records.c.id.in_(targets[i:i + 500]), t.records.c.retracted.is_(False),
                )).values(retracted=True, change_seq=self.seq))


    def _write_quarantine(self) -> None:
        q = t.quarantine
        resolved = sorted(self.recovered)
        for i in range(0, len(resolved), 500):
            self.conn.execute(delete(q).where(q.c.record_id.in_(resolved[i:i + 500])))
        if not self.quarantined:
            return
        ids = list(self.quarantined)
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            known.update(self.conn.execute(select(q.c.record_id).where(q.c.record_id.in_(ids[i:i + 500]))).scalars())
        fresh = [dict(row, attempts=1) for rid, row in self.quarantined.items() if rid not in known]
        if fresh:
            self.conn.execute(insert(q), fresh)
        for rid in known:  # seen before: the newest payload and error, one more attempt
            row = self.quarantined[rid]
            self.conn.execute(update(q).where(q.c.record_id == rid).values(
                raw=row["raw"], raw_format=row["raw_format"], raw_sha256=row["raw_sha256"], error=row["error"],
                last_seen=self.now, run_id=self.run_id, attempts=q.c.attempts + 1))


class _RowView:
    """The columns of `records` the upsert consults, for rows written earlier in the same batch."""

    __slots__ = ("id", "current_version", "content_hash", "state", "retracted", "source_updated")

    def __init__(self, rid: str, version: int, digest: str, state: str, retracted: bool,
                 source_updated: dt.date | None):
        self.id, self.current_version, self.content_hash = rid, version, digest
        self.state, self.retracted, self.source_updated = state, retracted, source_updated


def _run_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_abandoned(owner: str | None) -> bool:
    """Whether the process that started a `running` run is gone.

    Rows of another host are left alone: with a shared PostgreSQL catalog that host may be running
    them. Rows without an owner predate m006; runs hold the ingest lock (`ingest.lock.job_lock`), so one still
    `running` when a new run starts is stale. A pid the OS reused reads as alive: the row then
    waits for a later run, which is the safe way to be wrong.
    """
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _fetch_records(conn: Connection, ids: list[str]) -> list[Any]:
    cols = (t.records.c.id, t.records.c.current_version, t.records.c.content_hash, t.records.c.state,
            t.records.c.retracted, t.records.c.source_updated)
    out: list[Any] = []
    for i in range(0, len(ids), 500):
        out.extend(conn.execute(select(*cols).where(t.records.c.id.in_(ids[i:i + 500]))).all())
    return out


def _is_stale(current: dt.date | None, incoming: dt.date | None) -> bool:
    """An older revision arriving after a newer one (e.g. files ingested out of order) is skipped."""
    return current is not None and incoming is not None and incoming < current


def _retraction_targets(conn: Connection, ids: list[str]) -> set[str]:
    """Which of `ids` some stored retraction notice retracts."""
    out: set[str] = set()
    for i in range(0, len(ids), 500):
        out.update(conn.execute(select(t.record_links.c.dst).where(and_(
            t.record_links.c.dst.in_(ids[i:i + 500]), t.record_links.c.kind == "retracts"))).scalars())
    return out


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
