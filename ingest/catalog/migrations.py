"""Named, ordered schema migrations. Append new steps; never edit an applied one.

Each step is a function of a connection inside a transaction; `schema_migrations` records which
ran, so opening an old catalog brings it up to date and opening a current one does nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from ingest.catalog import schema
from ingest.catalog.dialect import lock_key
from ingest.curation.migrations import m004_curation

Migration = Callable[[Connection], None]
MIGRATIONS_LOCK = lock_key("oncolit:catalog:migrations")


def m001_initial(conn: Connection) -> None:
    for table in (schema.records, schema.record_versions, schema.record_links,
                  schema.saved_searches, schema.ingest_runs):
        table.create(conn, checkfirst=True)


def m002_extractions(conn: Connection) -> None:
    """Cached findings and grades per (record version, model, prompt id): synthesis.store."""
    schema.extractions.create(conn, checkfirst=True)


def m003_digests(conn: Connection) -> None:
    """Subscribers, built digests, the send log and what was sent: oncolit.delivery."""
    for table in (schema.subscribers, schema.digests, schema.send_log, schema.sent_items):
        table.create(conn, checkfirst=True)


def m005_quarantine(conn: Connection) -> None:
    """Poison records kept raw with their error instead of failing their batch (issue 18)."""
    schema.quarantine.create(conn, checkfirst=True)


def m006_run_owner(conn: Connection) -> None:
    """`ingest_runs.owner` (host:pid), so runs whose process died can be told from running ones."""
    if "owner" not in {c["name"] for c in inspect(conn).get_columns("ingest_runs")}:  # new catalogs have it
        conn.execute(text("ALTER TABLE ingest_runs ADD COLUMN owner VARCHAR(200)"))


MIGRATIONS: list[tuple[str, Migration]] = [
    ("m001_initial", m001_initial),
    ("m002_extractions", m002_extractions),
    ("m003_digests", m003_digests),
    ("m004_curation", m004_curation),
    ("m005_quarantine", m005_quarantine),
    ("m006_run_owner", m006_run_owner),
]


def migrate(conn: Connection) -> list[str]:
    """Apply pending migrations in order; return the names applied.

    On PostgreSQL, processes opening a new catalog at once (API workers and a scheduler starting
    together) take turns: the first applies the steps, the others then find them recorded.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATIONS_LOCK})
    schema.schema_migrations.create(conn, checkfirst=True)
    done = set(conn.execute(select(schema.schema_migrations.c.name)).scalars())
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(conn)
        conn.execute(schema.schema_migrations.insert().values(name=name, applied_at=dt.datetime.now(dt.UTC)))
        applied.append(name)
    return applied


def table_names(conn: Connection) -> list[str]:
    return inspect(conn).get_table_names()
