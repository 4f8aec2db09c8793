"""Settings for e-mail digests: the SMTP server and how digests are built and scheduled.

They are two sections of the one settings tree (`Settings.smtp`, `Settings.digest`), so they are set
like every other value: `ONCOLIT_SMTP__HOST=mail.example.org`, `ONCOLIT_SMTP__PASSWORD=...`,
`ONCOLIT_DIGEST__MAX_ITEMS=20`, or `[smtp]` / `[digest]` tables in the TOML file. Values only.
"""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr


class SmtpSettings(BaseModel):
    """Where digests are handed over. Port 587 with STARTTLS is the submission default; port 465
    with `ssl=true` is implicit TLS; a local relay on port 25 may use neither."""

    host: str = Field("localhost", description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="SMTP server port (587 submission, 465 TLS, 25 relay).")
    starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before logging in.")
    ssl: bool = Field(False, description="Implicit TLS from the first byte (port 465); overrides starttls.")
    username: str | None = Field(None, description="Login name; no login when unset.")
    password: str | None = Field(None, description="Login password (ONCOLIT_SMTP__PASSWORD).")
    ca_file: Path | None = Field(None, description="CA bundle to verify the server with (a private CA).")
    timeout: float = Field(30.0, gt=0, description="Seconds to wait on the server before the send fails.")
    sender: str = Field("OncoLit <digests@localhost>",
                        description="From address of digests, e.g. 'OncoLit <digests@example.org>'.")


class DigestSettings(BaseModel):
    """How digests are chosen, ranked, capped and scheduled."""

    send_hour: int = Field(7, ge=0, le=23, description="Local hour a digest goes out (a subscriber may override).")
    weekly_day: int = Field(1, ge=1, le=7, description="ISO weekday weekly digests go out (1 = Monday).")
    max_items: int = Field(25, ge=1, description="Items in one digest at most, over all topics.")
    max_items_per_topic: int = Field(8, ge=1, description="Items shown per topic; the rest are counted as 'more'.")
    min_relevance: float = Field(0.25, ge=0, le=1, description="Relevance a record needs to a topic to be listed.")
    first_lookback_days: int = Field(14, ge=0, description="A subscriber's first digest covers records added or "
                                                           "revised this many days before it is built.")
    use_index: bool = Field(True, description="Score relevance with the vector index when one has been synced "
                                              "(otherwise, or when it cannot be opened, keywords only).")
    overview: bool = Field(True, description="Ask the LLM for an overview paragraph per topic (checked "
                                             "sentence by sentence); otherwise the overview is a quote.")
    overview_items: int = Field(5, ge=1, description="Items of a topic shown to the LLM for its overview.")
    overview_max_tokens: int = Field(320, ge=32, description="Length limit of one overview (JSON reply), in tokens.")
    send_empty: bool = Field(False, description="Send a digest even when nothing is new (else it is only logged).")
    max_attempts: int = Field(10, ge=1, description="Send attempts per digest before it is given up.")
    web_base_url: str | None = Field(
        None, description="Public base URL of `oncolit serve`, e.g. https://oncolit.example.org: digests then "
                          "link to their web view (the items not shown) and to one-click unsubscribe there. "
                          "Needs `secret`.")
    secret: SecretStr | None = Field(
        None, description="Key that signs the unsubscribe and web-view links (ONCOLIT_DIGEST__SECRET; e.g. "
                          "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`). Changing it voids "
                          "the links of digests already sent.")
    unsubscribe_url: str | None = Field(
        None, description="One-click unsubscribe URL with a {token} placeholder, e.g. "
                          "https://oncolit.example.org/unsubscribe/{token} (default with web_base_url and "
                          "secret: <web_base_url>/unsubscribe/{token}, the signed token).")
    unsubscribe_mailto: str | None = Field(
        None, description="Address that unsubscribes by mail (default: the sender address).")
    message_id_domain: str | None = Field(None, description="Right-hand side of Message-IDs (default: the "
                                                            "sender's domain).")
    list_id: str = Field("OncoLit digests <digests.oncolit>", description="List-Id header.")


def delivery_settings(settings: Any) -> tuple[SmtpSettings, DigestSettings]:
    """The `smtp` and `digest` sections of a `Settings` (their defaults where it has none)."""
    smtp = getattr(settings, "smtp", None)
    digest = getattr(settings, "digest", None)
    return (smtp if isinstance(smtp, SmtpSettings) else SmtpSettings(),
            digest if isinstance(digest, DigestSettings) else DigestSettings())


def sender_domain(smtp: SmtpSettings) -> str:
    address = parseaddr(smtp.sender)[1]
    return address.rpartition("@")[2] or "oncolit.invalid"
