"""The one table from OncoLit's errors (`ingest.errors`) to HTTP statuses, for every HTTP surface.

The API's exception handler (`oncolit.api`), the curation JSON routes (`oncolit.web.deps.http_errors`) and
the librarian pages (which re-render the form with the message) all look the status up here, so one error
means one status wherever it is raised. The first row that matches wins: subclasses come before their base.
"""

from __future__ import annotations

from ingest.errors import (
    AlreadyExists,
    ConfigError,
    CurationError,
    IndexBusy,
    LLMError,
    MalformedPayload,
    OncoLitError,
    PermissionDenied,
    RecordNotFound,
    SourceError,
    SourceRequestError,
    SourceUnavailable,
)

# (error class, HTTP status, the "error" field of a JSON error body)
HTTP_ERRORS: tuple[tuple[type[OncoLitError], int, str], ...] = (
    (PermissionDenied, 403, "forbidden"),
    (RecordNotFound, 404, "not_found"),
    (AlreadyExists, 409, "conflict"),  # the request was fine; the name is taken
    (CurationError, 400, "invalid_request"),
    (SourceRequestError, 400, "source_refused"),  # the source refused the query as written: fix the query
    (SourceUnavailable, 503, "source_unavailable"),
    (MalformedPayload, 502, "source_malformed"),
    (SourceError, 502, "source_error"),
    (LLMError, 503, "model_unavailable"),
    (IndexBusy, 503, "index_busy"),  # another process holds the embedded index: retry later
    (ConfigError, 500, "configuration"),
    (OncoLitError, 500, "internal"),
)


def http_status(exc: OncoLitError) -> tuple[int, str]:
    """(status, kind) of the first row whose class `exc` is an instance of."""
    for cls, status, kind in HTTP_ERRORS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "internal"  # unreachable: OncoLitError is the last row


def error_body(exc: OncoLitError) -> tuple[int, dict[str, str]]:
    """The API's JSON error: status and `{"error": <kind>, "detail": <one line>}`."""
    status, kind = http_status(exc)
    return status, {"error": kind, "detail": str(exc)}
