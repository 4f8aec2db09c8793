"""OncoLit's exception tree. Third-party errors are mapped to these where they enter.

    OncoLitError
    ├── ConfigError              bad or missing settings
    ├── SourceError              a remote source failed
    │   ├── SourceUnavailable    retries exhausted on 429 / 5xx / timeouts / connection errors
    │   ├── SourceRequestError   the source refused the request (4xx other than 429): fix the query
    │   └── MalformedPayload     a response or file could not be read safely (bad/truncated/hostile XML or JSON)
    │       └── InvalidRecord    one record in it is impossible (a year 0 date, ...): quarantined, not fatal
    ├── CatalogError             the catalog database refused an operation
    ├── RecordNotFound           no record with that id in the catalog
    ├── UsageError               option values that cannot work (--since after --until, --limit 0): exit 2
    └── PartialRun               a run failed after part of its work was committed (exit code 3)

The CLI prints `error: <message>` for these and exits with the error's `exit_code` (1, or 3 for
work left half done); ONCOLIT_DEBUG=1 re-raises.
"""

from __future__ import annotations


class OncoLitError(Exception):
    """Base for errors a user can act on; the message says what to do."""

    exit_code = 1


class ConfigError(OncoLitError):
    pass


class SourceError(OncoLitError):
    pass


class SourceUnavailable(SourceError):
    pass


class SourceRequestError(SourceError):
    pass


class MalformedPayload(SourceError):
    pass


class InvalidRecord(MalformedPayload):
    """One record's content cannot be stored (a date that is no calendar day, ...). The catalog keeps
    such a record raw in its quarantine, with this message, and ingests the rest of the batch."""


class CatalogError(OncoLitError):
    pass


class RecordNotFound(OncoLitError):
    pass


class UsageError(OncoLitError):
    """A command was given values that cannot work, found before anything was done. Exit code 2,
    as for any other bad option."""

    exit_code = 2


class PartialRun(OncoLitError):
    """Something failed after some of the work was committed: what is committed stays (each batch
    is whole), the rest did not happen, and the message says which is which. Distinct exit code 3,
    so a script can tell "nothing happened" (1) from "rerun to finish" (3)."""

    exit_code = 3
