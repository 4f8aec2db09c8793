"""Catalog tables (SQLAlchemy Core), portable between SQLite and PostgreSQL.

Tables are declared here once; `migrations.py` creates and alters them in named, ordered steps.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from ingest.records.common import canonical_json


class CanonicalJSON(TypeDecorator[Any]):
    """JSON stored as canonical text; accepts an already-serialised string so hot paths dump once."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return canonical_json(value)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("name", String(100), primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

# One row per record: its identity and current state. `change_seq` grows whenever anything a
# derived store cares about changes (new version, deletion, retraction), so index sync and
# digests can ask "what changed since N".
records = Table(
    "records", metadata,
    Column("id", String(40), primary_key=True),  # pubmed:<PMID> | ctgov:<NCT id>
    Column("source", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # article | trial
    Column("current_version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("state", String(16), nullable=False),  # active | deleted
    Column("retracted", Boolean, nullable=False, default=False),
    Column("title", Text, nullable=False, default=""),
    Column("published", Date),
    Column("source_updated", Date),  # DateRevised / lastUpdatePostDate of the current version
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Column("change_seq", Integer, nullable=False, default=0),
    Index("ix_records_change_seq", "change_seq"),
    Index("ix_records_source_state", "source", "state"),
)

record_versions = Table(
    "record_versions", metadata,
    Column("record_id", String(40), ForeignKey("records.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("fields", CanonicalJSON, nullable=False),  # the parsed model, model_dump(mode="json")
    Column("raw", LargeBinary, nullable=False),  # zlib-compressed source payload
    Column("raw_format", String(16), nullable=False),
    Column("source_updated", Date),
    Column("changes", JSON, nullable=False),  # what changed from the previous version
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("run_id", Integer),
)

# Directed links between records. kinds: reports_trial (article -> trial), references (trial ->
# article, detail = reference type), retracts / retracted_by / erratum_in / concern_in (article -> article).
record_links = Table(
    "record_links", metadata,
    Column("src", String(40), primary_key=True),
    Column("dst", String(40), primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("detail", String(40)),
    Index("ix_record_links_dst", "dst"),
)

saved_searches = Table(
    "saved_searches", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("source", String(16), nullable=False),
    Column("query", Text, nullable=False),
    Column("params", JSON, nullable=False),
    Column("schedule", String(100)),  # cron expression; NULL = the default from settings
    Column("active", Boolean, nullable=False, default=True),
    Column("owner", String(100)),
    # The last calendar day whose records are all committed. Moves only after the commit.
    Column("watermark", Date),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

ingest_runs = Table(
    "ingest_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("search_name", String(100)),
    Column("mode", String(16), nullable=False),  # search | query | files
    Column("window_start", Date),
    Column("window_end", Date),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("status", String(16), nullable=False),  # running | ok | failed
    Column("counts", JSON, nullable=False),
    Column("error", Text),
)
