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
    Float,
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
    Column("status", String(16), nullable=False),  # running | ok | partial | failed | interrupted
    Column("counts", JSON, nullable=False),
    Column("error", Text),
    # "host:pid" of the process that started the run (m006): a row left `running` by a process
    # that is gone (SIGKILL, power loss) is marked `interrupted` when the next run starts.
    Column("owner", String(200)),
)

# Records that could not be stored (a "poison" record: a year 0 date, a payload the model rejects),
# kept raw with their error so that one bad record never blocks its window. One row per record id:
# the latest bad payload. Retried on later runs of the same source; a readable payload of the record
# arriving later (a revision, a parser fix) removes the row.
quarantine = Table(
    "quarantine", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("source", String(16), nullable=False),
    Column("raw", LargeBinary, nullable=False),  # zlib-compressed source payload, as in record_versions
    Column("raw_format", String(16), nullable=False),
    Column("raw_sha256", String(64), nullable=False),  # of the uncompressed payload
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=1),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("run_id", Integer),
    Index("ix_quarantine_source", "source"),
)

# Findings extracted from one record version by one model and prompt (synthesis.store). The key
# makes re-running harmless and lets a changed prompt or model coexist with older results.
extractions = Table(
    "extractions", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("prompt_id", String(80), primary_key=True),
    Column("findings", CanonicalJSON, nullable=False),
    Column("dropped", CanonicalJSON, nullable=False),
    Column("grade", CanonicalJSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("seconds", Float, nullable=False, default=0.0),
)

# E-mail digests (oncolit.delivery, synthesis.digest). A subscriber's topics are a JSON list of
# {name, query, search, sites, genes}; `min_level` is a grading rung code ("2b" keeps 1a..2b).
subscribers = Table(
    "subscribers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("topics", JSON, nullable=False),
    Column("min_level", String(4)),  # NULL = every level
    Column("frequency", String(8), nullable=False),  # daily | weekly
    Column("timezone", String(64), nullable=False),
    Column("send_hour", Integer),  # local hour; NULL = settings.digest.send_hour
    Column("format", String(12), nullable=False),  # html | text | markdown
    Column("active", Boolean, nullable=False, default=True),
    Column("token", String(64), nullable=False, unique=True),  # unsubscribe token
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One built digest per subscriber and period ("2026-11-27" daily, "2026-W48" weekly), never rebuilt:
# a retry sends the stored message. (from_seq, from_time] .. (to_seq, to_time] is the slice of the
# catalog it covered; the next digest starts where this one ended.
digests = Table(
    "digests", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("built_at", DateTime(timezone=True), nullable=False),
    Column("message_id", String(255), nullable=False),
    Column("from_seq", Integer, nullable=False),
    Column("to_seq", Integer, nullable=False),
    Column("from_time", DateTime(timezone=True)),
    Column("to_time", DateTime(timezone=True)),
    Column("item_ids", JSON, nullable=False),  # records shown as items, in order
    Column("alert_ids", JSON, nullable=False),  # records the retraction alerts are about
    Column("counts", JSON, nullable=False),
    Column("document", CanonicalJSON, nullable=False),  # the JSON output
    Column("eml", LargeBinary, nullable=False),  # zlib-compressed message bytes, resent as they are
    Column("sha256", String(64), nullable=False),  # of the uncompressed message
)

# Delivery state per digest: pending -> sent | failed (retried by the next run) | empty (nothing to send).
send_log = Table(
    "send_log", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_send_log_status", "status"),
)

# What each subscriber was sent (kind "item" or "alert"), for retraction alerts on earlier digests.
sent_items = Table(
    "sent_items", metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("record_id", String(40), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("version", Integer),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Index("ix_sent_items_record", "record_id"),
)
