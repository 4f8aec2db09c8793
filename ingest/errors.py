"""OncoLit's exception tree: every error a user can act on, in one module. Third-party errors are mapped
to these where they enter (HTTP and XML in the sources, SQLAlchemy in the catalog, qdrant in the stores,
llama.cpp / transformers / HTTP in the LLM backends, smtplib in delivery).

    OncoLitError                     base: the message says what to do
    ├── ConfigError                  bad or missing settings
    ├── SourceError                  a remote source or a downloaded file failed
    │   ├── SourceUnavailable        retries exhausted on 429 / 5xx / timeouts / connection errors
    │   ├── SourceRequestError       the source refused the request (4xx other than 429): fix the query
    │   └── MalformedPayload         a response or file could not be read safely (bad/truncated/hostile XML or JSON)
    │       └── InvalidRecord        one record holds an impossible value (quarantined, not fatal)
    ├── CatalogError                 the catalog database refused an operation
    │   └── AlreadyExists            a name that must be unique (a saved search ...) is taken
    ├── RecordNotFound               no record (or saved search, subscriber, user ...) with that name
    ├── CurationError                a curation request that cannot be carried out as asked
    │   └── PermissionDenied         the acting user lacks the role the change needs
    ├── StoreError                   the vector store refused an operation or holds an incompatible collection
    │   └── IndexBusy                another process (`oncolit serve`, a sync) still holds the index after the wait
    ├── LLMError                     a model could not be loaded, found, verified or run
    │   ├── GenerationRefused        the configured backend does not generate (backend "none")
    │   ├── ModelNotFound            unknown registry name, model not pulled, or a path that is not a model
    │   └── ModelVerificationError   an assembled or stored model file failed its pinned sha256 / size
    ├── PromptError                  a prompt was defined or filled with the wrong placeholders (a bug)
    ├── DeliveryError                the SMTP server did not accept a digest (retried on the next run)
    ├── UsageError                   a command got values that cannot work (exit 2)
    └── PartialRun                   some work committed, the rest failed: rerun to finish (exit 3)

The classes are also importable where they were first defined (`synthesis.llm`, `index.store`,
`ingest.curation`, `synthesis.prompts`, `oncolit.delivery.smtp`); those are the same objects.

How the surfaces show them: the CLI prints `error: <message>` and exits 1 (ONCOLIT_DEBUG=1 re-raises);
HTTP maps each class to a status through the one table in `oncolit.http_errors`.

Not in this tree, on purpose: the replay server's internal request errors (`ingest.replay_*`), which become
HTTP replies of the fake server, and `synthesis.design_classifier.model.ModelFileError`, a `ValueError` for
a damaged weights file the package ships.
"""

from __future__ import annotations


class OncoLitError(Exception):
    """Base for errors a user can act on; the message says what to do."""

    exit_code = 1


class ConfigError(OncoLitError):
    """Bad or missing settings."""


class SourceError(OncoLitError):
    """A remote source or a downloaded file failed."""


class SourceUnavailable(SourceError):
    """Retries exhausted on 429 / 5xx / timeouts / connection errors."""


class SourceRequestError(SourceError):
    """The source refused the request (4xx other than 429): fix the query."""


class MalformedPayload(SourceError):
    """A response or file could not be read safely."""


class InvalidRecord(MalformedPayload):
    """One record's content cannot be stored (a date that is no calendar day, ...). The catalog keeps
    such a record raw in its quarantine, with this message, and ingests the rest of the batch."""


class CatalogError(OncoLitError):
    """The catalog database refused an operation."""


class AlreadyExists(CatalogError):
    """A name that must be unique (a saved search, ...) is already taken: pick another or remove the old one.
    HTTP answers 409, not 500: the request was fine, it collides with what is there."""


class RecordNotFound(OncoLitError):
    """No record (or saved search, subscriber, user ...) with that name."""


class CurationError(OncoLitError):
    """A curation request that cannot be carried out as asked (the message says why)."""


class PermissionDenied(CurationError):
    """The acting user lacks the role the change needs."""


class StoreError(OncoLitError):
    """The vector store refused an operation or holds an incompatible collection."""


class IndexBusy(StoreError):
    """The embedded index has one writer at a time and another OncoLit process kept it past the wait; the
    message names that process (`oncolit serve` with its URL, or the command and pid)."""


class LLMError(OncoLitError):
    """A model could not be loaded, found, verified or run; the message says what to do."""


class GenerationRefused(LLMError):
    """The backend is configured not to generate; callers should fall back to extractive rules."""


class ModelNotFound(LLMError):
    """No such registry name, the model was never pulled, or a path does not hold a usable model."""


class ModelVerificationError(LLMError):
    """A model file does not match its pinned sha256 or size, so it is not trusted or kept."""


class PromptError(OncoLitError):
    """A prompt was defined or filled with the wrong placeholders (a programming error)."""


class DeliveryError(OncoLitError):
    """The SMTP server did not accept the message (it is retried on the next run)."""


class UsageError(OncoLitError):
    """A command was given values that cannot work, found before anything was done. Exit code 2,
    as for any other bad option."""

    exit_code = 2


class PartialRun(OncoLitError):
    """Something failed after some of the work was committed: what is committed stays (each batch
    is whole), the rest did not happen, and the message says which is which. Distinct exit code 3,
    so a script can tell "nothing happened" (1) from "rerun to finish" (3)."""

    exit_code = 3
