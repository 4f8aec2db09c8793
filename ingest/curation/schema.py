"""Curation tables, declared on the catalog's one `metadata` so they live (and migrate) with it.

People and keys, include/exclude rules, per-record decisions (status, pins, tags, notes), the rule
verdict each record version got, cached queue scores, web sessions and the append-only audit log.
`ingest.curation.migrations.m004_curation` creates them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from ingest.catalog.schema import metadata

# People: a name (the CLI's --as, the audit's actor) and one role: reader < librarian < admin.
curation_users = Table(
    "curation_users", metadata,
    Column("name", String(100), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(100)),
)

# API keys: `olk_<key_id>_<secret>`. Only the key id (public, for lookup) and a salted scrypt hash of
# the whole token are stored; the token is shown once, when it is made.
curation_api_keys = Table(
    "curation_api_keys", metadata,
    Column("key_id", String(16), primary_key=True),
    Column("user_name", String(100), nullable=False),
    Column("label", String(200)),
    Column("salt", String(64), nullable=False),
    Column("hash", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(100)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Index("ix_curation_api_keys_user", "user_name"),
)

# Web sessions made by logging in with a key: the cookie holds a random token; only its sha256 is kept.
curation_sessions = Table(
    "curation_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_name", String(100), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Include/exclude rules. field: journal | publication_type | language | mesh | keyword | phrase |
# record_id | trial_status | phase. `value` is stored normalised (see rules.normalise_value).
curation_rules = Table(
    "curation_rules", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("action", String(8), nullable=False),  # include | exclude
    Column("field", String(24), nullable=False),
    Column("value", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("author", String(100), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per record a librarian decided on (it may precede the record's arrival: an imported PMID).
curation_decisions = Table(
    "curation_decisions", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("status", String(16), nullable=False),  # approved | excluded | pending (a decision undone)
    Column("reason", Text),
    Column("decided_by", String(100), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Index("ix_curation_decisions_status", "status"),
)

curation_pins = Table(
    "curation_pins", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("topic", String(200), primary_key=True),
    Column("pinned_by", String(100), nullable=False),
    Column("pinned_at", DateTime(timezone=True), nullable=False),
    Index("ix_curation_pins_topic", "topic"),
)

curation_tags = Table(
    "curation_tags", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("tag", String(100), primary_key=True),
    Column("tagged_by", String(100), nullable=False),
    Column("tagged_at", DateTime(timezone=True), nullable=False),
    Index("ix_curation_tags_tag", "tag"),
)

curation_notes = Table(
    "curation_notes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(40), nullable=False),
    Column("author", String(100), nullable=False),
    Column("text", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_curation_notes_record", "record_id"),
)

# The rules' verdict on one record version under one rule-set revision: a cache that the ingest hook
# fills and a rule change refreshes. A row for another version or revision is stale and re-evaluated.
curation_verdicts = Table(
    "curation_verdicts", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("rules_rev", Integer, nullable=False),
    Column("excluded", Boolean, nullable=False),
    Column("rule_ids", JSON, nullable=False),  # the rules that decided it (exclude matches / missed allow-lists)
    Column("evaluated_at", DateTime(timezone=True), nullable=False),
    Index("ix_curation_verdicts_excluded", "excluded"),
)

# Evidence level per record version, for sorting the queue (computing it takes ~15 ms a record).
curation_scores = Table(
    "curation_scores", metadata,
    Column("record_id", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("evidence_level", String(8)),
    Column("evidence_rank", Integer),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

# Counters: `rules_rev` (bumped on every rule change).
curation_state = Table(
    "curation_state", metadata,
    Column("key", String(40), primary_key=True),
    Column("value", Integer, nullable=False),
)

# Every change to sources, rules, decisions, users and keys: who, when, before and after. Append-only:
# the migration installs triggers that refuse UPDATE and DELETE.
curation_audit = Table(
    "curation_audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("entity", String(24), nullable=False),  # search | rule | record | user | key
    Column("entity_id", String(200), nullable=False),
    Column("before", JSON),
    Column("after", JSON),
    Index("ix_curation_audit_entity", "entity", "entity_id"),
)

TABLES = (curation_users, curation_api_keys, curation_sessions, curation_rules, curation_decisions,
          curation_pins, curation_tags, curation_notes, curation_verdicts, curation_scores, curation_state,
          curation_audit)
