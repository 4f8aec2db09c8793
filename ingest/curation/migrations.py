"""The curation migration, appended to `ingest.catalog.migrations.MIGRATIONS` as ("m004_curation", ...).

The tables are imported inside the step: `ingest.catalog.migrations` imports this module while the
catalog package is still loading, and the tables hang off the catalog's `metadata`.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

_SQLITE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS curation_audit_no_update BEFORE UPDATE ON curation_audit "
    "BEGIN SELECT RAISE(ABORT, 'curation_audit is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS curation_audit_no_delete BEFORE DELETE ON curation_audit "
    "BEGIN SELECT RAISE(ABORT, 'curation_audit is append-only'); END",
)

_POSTGRES_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION curation_audit_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'curation_audit is append-only'; END; $$ LANGUAGE plpgsql",
    "DROP TRIGGER IF EXISTS curation_audit_append_only ON curation_audit",
    "CREATE TRIGGER curation_audit_append_only BEFORE UPDATE OR DELETE ON curation_audit "
    "FOR EACH ROW EXECUTE FUNCTION curation_audit_append_only()",
)


def m004_curation(conn: Connection) -> None:
    """Users, keys, sessions, rules, decisions, pins, tags, notes, verdicts, scores and the audit log
    (with triggers that make it append-only on SQLite and PostgreSQL)."""
    from ingest.curation import schema

    for table in schema.TABLES:
        table.create(conn, checkfirst=True)
    dialect = conn.dialect.name
    statements = _SQLITE_TRIGGERS if dialect == "sqlite" else _POSTGRES_TRIGGERS if dialect == "postgresql" else ()
    for statement in statements:
        conn.execute(text(statement))
