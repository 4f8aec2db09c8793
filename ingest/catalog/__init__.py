"""The durable catalog (SQLAlchemy; SQLite file by default, PostgreSQL by URL)."""

from ingest.catalog.catalog import BatchOutcome, Catalog, Quarantined, QuarantineEntry, model_from_fields

__all__ = ["BatchOutcome", "Catalog", "QuarantineEntry", "Quarantined", "model_from_fields"]
