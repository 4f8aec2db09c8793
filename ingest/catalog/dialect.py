"""What differs between SQLite and PostgreSQL, in one place, so the stores above stay portable.

- `upsert`: INSERT ... ON CONFLICT DO UPDATE (both dialects have it; SQLAlchemy spells it per dialect).
  Select-then-insert and delete-then-insert race when two processes write the same key at once on
  PostgreSQL (the second commit fails on the unique index); one statement does not.
- `serialize_change_seq`: `change_seq` is "max + 1" inside the writing transaction. SQLite has one
  writer at a time, so the numbers follow commit order. PostgreSQL runs writers concurrently: two
  batches could read the same max, or a batch with a lower seq could commit after a reader already
  moved past it, and that reader would never see its records. A transaction-scoped advisory lock taken
  before the max is read makes the writers of `change_seq` take turns (released at commit/rollback).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, insert, text, tuple_


def with_driver(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3, the driver OncoLit installs: SQLAlchemy's default
    for a bare `postgresql://` is psycopg2, which is not installed and would fail with an import error."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name (same on every machine)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


CHANGE_SEQ_LOCK = lock_key("oncolit:catalog:change_seq")


def serialize_change_seq(conn: Connection) -> None:
    """Call first in a transaction that assigns a new `change_seq` (see the module docstring)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHANGE_SEQ_LOCK})


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, replacing the other columns of rows whose `keys` already exist. Every row must
    have the same columns."""
    if not rows:
        return
    # One statement may not touch a row twice (PostgreSQL refuses): the last row of a key wins.
    rows = list({tuple(r[k] for k in keys): r for r in rows}.values())
    others = [c for c in rows[0] if c not in keys]
    name = conn.dialect.name
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        conn.execute(pg.on_conflict_do_update(index_elements=list(keys), set_={c: pg.excluded[c] for c in others})
                     if others else pg.on_conflict_do_nothing(index_elements=list(keys)), list(rows))
        return
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(table)
        conn.execute(lite.on_conflict_do_update(index_elements=list(keys), set_={c: lite.excluded[c] for c in others})
                     if others else lite.on_conflict_do_nothing(index_elements=list(keys)), list(rows))
        return
    # Another backend: correct for one writer at a time.
    key_cols = [table.c[k] for k in keys]
    for i in range(0, len(rows), 500):
        part = rows[i:i + 500]
        conn.execute(delete(table).where(tuple_(*key_cols).in_([tuple(r[k] for k in keys) for r in part])))
        conn.execute(insert(table), list(part))
