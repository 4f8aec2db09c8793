"""The durable catalog (SQLAlchemy; SQLite file by default, PostgreSQL by URL)."""

from ingest.catalog.catalog import Catalog, model_from_fields

__all__ = ["Catalog", "model_from_fields"]
