"""The digests table and the send log: one digest per subscriber and period, sent at most once.

States of a period in `send_log`:

    (none) ──build──> pending ──SMTP accepted──> sent
                        │  ^
                 refused/failed: failed ──next run──┘      (attempts counted; given up at max_attempts)
    (none) ──build, nothing new──> empty

Why a retry cannot duplicate content and (almost) cannot duplicate mail:
- The digest row and its `pending` log row are committed together *before* the message is handed to
  SMTP, and hold the exact message bytes. A later run never builds that period again: it sends the
  stored bytes. Two runs cannot both build it (primary key), and `oncolit.delivery.run` holds a
  process lock while sending.
- One window cannot be closed by any local bookkeeping: the server has accepted the message, and
  the process dies before it records `sent`. The next run sends it again. The resend is
  byte-for-byte the same message with the same Message-ID (derived from subscriber and period), so
  mail systems that suppress duplicates by Message-ID drop it, and clients thread it as the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from ingest.catalog import Catalog
from ingest.catalog import schema as t

PENDING, SENT, FAILED, EMPTY = "pending", "sent", "failed", "empty"
UNSENT = (PENDING, FAILED)


@dataclass(frozen=True)
class StoredDigest:
    subscriber_id: int
    period: str
    built_at: dt.datetime
    message_id: str
    from_seq: int
    to_seq: int
    from_time: dt.datetime | None
    to_time: dt.datetime | None
    item_ids: list[str]
    alert_ids: list[str]
    counts: dict[str, Any]
    document: dict[str, Any]
    eml: bytes
    sha256: str


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _stored(row: Any) -> StoredDigest:
    m = row._mapping
    return StoredDigest(m["subscriber_id"], m["period"], _utc(m["built_at"]), m["message_id"], m["from_seq"],
                        m["to_seq"], _utc(m["from_time"]), _utc(m["to_time"]), list(m["item_ids"]),
                        list(m["alert_ids"]), dict(m["counts"]), m["document"], zlib.decompress(m["eml"]),
                        m["sha256"])


def get_digest(catalog: Catalog, subscriber_id: int, period: str) -> StoredDigest | None:
    d = t.digests.c
    with catalog.engine.connect() as conn:
        row = conn.execute(select(t.digests).where(and_(d.subscriber_id == subscriber_id,
                                                        d.period == period))).first()
    return _stored(row) if row is not None else None


def previous_digest(catalog: Catalog, subscriber_id: int, period: str) -> StoredDigest | None:
    """The subscriber's latest digest built for another period: where the next one starts."""
    d = t.digests.c
    with catalog.engine.connect() as conn:
        row = conn.execute(select(t.digests).where(and_(d.subscriber_id == subscriber_id, d.period != period))
                           .order_by(d.built_at.desc(), d.period.desc()).limit(1)).first()
    return _stored(row) if row is not None else None


def store_digest(catalog: Catalog, *, subscriber_id: int, period: str, built_at: dt.datetime, message_id: str,
                 from_seq: int, to_seq: int, from_time: dt.datetime | None, to_time: dt.datetime | None,
                 item_ids: list[str], alert_ids: list[str], counts: dict[str, Any], document: dict[str, Any],
                 eml: bytes, empty: bool) -> bool:
    """Record a built digest and its log row in one transaction. False if the period was built already."""
    try:
        with catalog.transaction() as conn:
            conn.execute(insert(t.digests).values(
                subscriber_id=subscriber_id, period=period, built_at=built_at, message_id=message_id,
                from_seq=from_seq, to_seq=to_seq, from_time=from_time, to_time=to_time, item_ids=item_ids,
                alert_ids=alert_ids, counts=counts, document=document, eml=zlib.compress(eml, 6),
                sha256=hashlib.sha256(eml).hexdigest()))
            conn.execute(insert(t.send_log).values(subscriber_id=subscriber_id, period=period,
                                                   status=EMPTY if empty else PENDING, attempts=0))
    except IntegrityError:
        return False
    return True


def log_row(catalog: Catalog, subscriber_id: int, period: str) -> dict[str, Any] | None:
    s = t.send_log.c
    with catalog.engine.connect() as conn:
        row = conn.execute(select(t.send_log).where(and_(s.subscriber_id == subscriber_id,
                                                         s.period == period))).first()
    return dict(row._mapping) if row is not None else None


def unsent(catalog: Catalog, subscriber_id: int, max_attempts: int) -> list[str]:
    """Periods of this subscriber still to send (pending or failed, attempts left), oldest first."""
    s, d = t.send_log.c, t.digests.c
    with catalog.engine.connect() as conn:
        rows = conn.execute(
            select(s.period).select_from(t.send_log.join(t.digests, and_(
                d.subscriber_id == s.subscriber_id, d.period == s.period)))
            .where(s.subscriber_id == subscriber_id, s.status.in_(UNSENT), s.attempts < max_attempts)
            .order_by(d.built_at, s.period)).scalars()
        return list(rows)


def begin_attempt(catalog: Catalog, subscriber_id: int, period: str, now: dt.datetime) -> int:
    """Count an attempt before the message leaves (so a crash mid-send still counts); returns its number."""
    s = t.send_log.c
    with catalog.transaction() as conn:
        conn.execute(update(t.send_log).where(and_(s.subscriber_id == subscriber_id, s.period == period))
                     .values(attempts=s.attempts + 1, last_attempt_at=now))
        return int(conn.execute(select(s.attempts).where(and_(s.subscriber_id == subscriber_id,
                                                              s.period == period))).scalar_one())


def mark_sent(catalog: Catalog, digest: StoredDigest, now: dt.datetime, versions: dict[str, int]) -> None:
    """The server accepted the message: log it and remember what was sent (for retraction alerts)."""
    s, si = t.send_log.c, t.sent_items.c
    rows = [{"subscriber_id": digest.subscriber_id, "record_id": rid, "period": digest.period, "kind": kind,
             "version": versions.get(rid), "sent_at": now}
            for kind, ids in (("item", digest.item_ids), ("alert", digest.alert_ids)) for rid in dict.fromkeys(ids)]
    with catalog.transaction() as conn:
        conn.execute(update(t.send_log).where(and_(s.subscriber_id == digest.subscriber_id,
                                                   s.period == digest.period))
                     .values(status=SENT, sent_at=now, last_error=None))
        existing = {(r.record_id, r.kind) for r in conn.execute(select(si.record_id, si.kind).where(and_(
            si.subscriber_id == digest.subscriber_id, si.period == digest.period)))}
        fresh = [r for r in rows if (r["record_id"], r["kind"]) not in existing]
        if fresh:
            conn.execute(insert(t.sent_items), fresh)


def mark_failed(catalog: Catalog, subscriber_id: int, period: str, error: str) -> None:
    s = t.send_log.c
    with catalog.transaction() as conn:
        conn.execute(update(t.send_log).where(and_(s.subscriber_id == subscriber_id, s.period == period))
                     .values(status=FAILED, last_error=error[:2000]))


def alert_candidates(catalog: Catalog, subscriber_id: int) -> set[str]:
    """Records sent to this subscriber as items that no digest of theirs has alerted about yet
    (built digests count, sent or not, so a pending alert is not repeated by the next period)."""
    si, d = t.sent_items.c, t.digests.c
    with catalog.engine.connect() as conn:
        items = set(conn.execute(select(si.record_id).where(si.subscriber_id == subscriber_id,
                                                            si.kind == "item")).scalars())
        alerted = {rid for ids in conn.execute(select(d.alert_ids).where(d.subscriber_id == subscriber_id)).scalars()
                   for rid in ids or []}
    return items - alerted


def history(catalog: Catalog, subscriber_id: int) -> list[dict[str, Any]]:
    """The send log of one subscriber, newest first (for `oncolit subscribers list --json` and tests)."""
    s = t.send_log.c
    with catalog.engine.connect() as conn:
        rows = conn.execute(select(t.send_log).where(s.subscriber_id == subscriber_id)
                            .order_by(s.period.desc())).all()
    return [dict(r._mapping) for r in rows]
