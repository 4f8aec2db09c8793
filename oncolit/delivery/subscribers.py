"""Subscribers (kept in the catalog) and their digest periods.

A period is the slot a digest fills, in the subscriber's own time zone: daily, the local calendar
day ("2026-11-27"); weekly, the ISO week ("2026-W48"). Its digest is due from the local send hour
of that day (weekly: of the configured weekday). What goes in it is not tied to the period's dates:
it is whatever the catalog gained since the subscriber's previous digest (see `synthesis.digest`).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from ingest.errors import CatalogError, ConfigError, RecordNotFound
from oncolit.delivery.settings import DigestSettings
from synthesis.digest import Topic, normalise_level

Frequency = Literal["daily", "weekly"]
Format = Literal["html", "text", "markdown"]
FREQUENCIES: tuple[str, ...] = ("daily", "weekly")
FORMATS: tuple[str, ...] = ("html", "text", "markdown")
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")


class Subscriber(BaseModel):
    id: int
    email: str
    name: str = ""
    topics: list[Topic]
    min_level: str | None = None
    frequency: Frequency = "daily"
    timezone: str = "UTC"
    send_hour: int | None = Field(None, ge=0, le=23)
    format: Format = "html"
    active: bool = True
    token: str
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def public(self) -> dict[str, Any]:
        """As `subscribers list --json` shows it (no unsubscribe token)."""
        return self.model_dump(mode="json", exclude={"token"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}; use an IANA name such as Europe/Paris or UTC") from None
    return name


def add_subscriber(catalog: Catalog, email: str, topics: list[Topic], *, name: str = "",
                   min_level: str | None = None, frequency: str = "daily", timezone: str = "UTC",
                   send_hour: int | None = None, format: str = "html") -> Subscriber:
    email = email.strip()
    if not _EMAIL.match(email):
        raise ConfigError(f"{email!r} is not an e-mail address")
    if not topics:
        raise ConfigError("a subscriber needs at least one topic (--topic, --search, --site or --gene)")
    if frequency not in FREQUENCIES:
        raise ConfigError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if send_hour is not None and not 0 <= send_hour <= 23:
        raise ConfigError("send hour must be 0..23")
    try:
        level = normalise_level(min_level)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    check_timezone(timezone)
    names = [tp.name for tp in topics]
    if len(set(names)) != len(names):
        raise ConfigError(f"topic names must differ: {', '.join(names)}")
    for tp in topics:
        if tp.search:
            catalog.get_search(tp.search)  # raises RecordNotFound with a hint
    now = _now()
    try:
        with catalog.transaction() as conn:
            conn.execute(insert(t.subscribers).values(
                email=email, name=name, topics=[tp.model_dump(mode="json") for tp in topics], min_level=level,
                frequency=frequency, timezone=timezone, send_hour=send_hour, format=format, active=True,
                token=secrets.token_urlsafe(24), created_at=now, updated_at=now))
    except IntegrityError:
        raise CatalogError(f"{email} is already subscribed; remove it first or pick another address") from None
    return get_subscriber(catalog, email)


def _from_row(row: Any) -> Subscriber:
    data = dict(row._mapping)
    data["topics"] = [Topic.model_validate(tp) for tp in data["topics"]]
    return Subscriber.model_validate(data)


def get_subscriber(catalog: Catalog, key: str | int) -> Subscriber:
    """By id, e-mail address or unsubscribe token."""
    c = t.subscribers.c
    text = str(key).strip()
    cond = or_(c.email == text, c.token == text)
    if text.isdigit():
        cond = or_(cond, c.id == int(text))
    with catalog.engine.connect() as conn:
        row = conn.execute(select(t.subscribers).where(cond)).first()
    if row is None:
        raise RecordNotFound(f"no subscriber {text!r}; see `oncolit subscribers list`")
    return _from_row(row)


def list_subscribers(catalog: Catalog, *, active_only: bool = False) -> list[Subscriber]:
    query = select(t.subscribers).order_by(t.subscribers.c.id)
    if active_only:
        query = query.where(t.subscribers.c.active.is_(True))
    with catalog.engine.connect() as conn:
        return [_from_row(r) for r in conn.execute(query)]


def remove_subscriber(catalog: Catalog, key: str | int) -> Subscriber:
    """Delete a subscriber with its digests and send log."""
    sub = get_subscriber(catalog, key)
    with catalog.transaction() as conn:
        for table in (t.sent_items, t.send_log, t.digests):
            conn.execute(delete(table).where(table.c.subscriber_id == sub.id))
        conn.execute(delete(t.subscribers).where(t.subscribers.c.id == sub.id))
    return sub


def set_active(catalog: Catalog, key: str | int, active: bool) -> Subscriber:
    sub = get_subscriber(catalog, key)
    with catalog.transaction() as conn:
        conn.execute(update(t.subscribers).where(t.subscribers.c.id == sub.id).values(active=active,
                                                                                       updated_at=_now()))
    return get_subscriber(catalog, sub.id)


# ------------------------------------------------------------------------------------------------
# Periods
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    key: str  # "2026-11-27" | "2026-W48"
    frequency: str
    start: dt.date
    end: dt.date  # inclusive
    send_at: dt.datetime  # aware (UTC)
    label: str


def period_for(sub: Subscriber, day: dt.date, settings: DigestSettings) -> Period:
    """The period that local calendar day `day` belongs to, for this subscriber."""
    hour = settings.send_hour if sub.send_hour is None else sub.send_hour
    zone = sub.zone
    if sub.frequency == "weekly":
        year, week, weekday = day.isocalendar()
        start = day - dt.timedelta(days=weekday - 1)
        end = start + dt.timedelta(days=6)
        send_day = start + dt.timedelta(days=settings.weekly_day - 1)
        label = f"week {week} of {year} ({start:%d %b} – {end:%d %b %Y})"
        key = f"{year}-W{week:02d}"
    else:
        start = end = send_day = day
        label = f"{day:%A} {day.day} {day:%B %Y}"
        key = day.isoformat()
    send_at = dt.datetime.combine(send_day, dt.time(hour), tzinfo=zone).astimezone(dt.UTC)
    return Period(key, sub.frequency, start, end, send_at, label)


def local_day(sub: Subscriber, now: dt.datetime) -> dt.date:
    """The subscriber's calendar day at instant `now`."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(sub.zone).date()


def current_period(sub: Subscriber, now: dt.datetime, settings: DigestSettings) -> Period:
    return period_for(sub, local_day(sub, now), settings)
