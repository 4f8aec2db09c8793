"""The sources' sections of the one settings tree (`oncolit.settings.Settings.pubmed` / `.ctgov`).

They live with the sources that read them, so a source depends on its own values and not on the app;
`oncolit.settings` composes them (and re-exports them under their old names). Values only: a source builds
its clients from these itself.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class RetrySettings(BaseModel):
    """How a source treats 429, 5xx, timeouts and unreadable bodies."""

    max_attempts: int = Field(6, ge=1, description="Tries per request before giving up with an error.")
    backoff_base: float = Field(1.0, ge=0, description="First back-off in seconds; doubles each retry.")
    backoff_max: float = Field(60.0, ge=0, description="Longest single wait, Retry-After included.")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for a response before retrying.")


class PubMedSettings(BaseModel):
    base_url: str = Field("https://eutils.ncbi.nlm.nih.gov/entrez/eutils/",
                          description="E-utilities base URL; point it at `oncolit replay` to run offline.")
    email: str = Field("oncolit@example.org", description="Contact e-mail NCBI asks every client to send.")
    tool: str = Field("oncolit", description="Tool name sent with every request.")
    api_key: str | None = Field(None, description="NCBI API key: raises the rate limit from 3 to 10 requests/s.")
    batch_size: int = Field(200, ge=1, le=10000, description="Records per efetch request.")
    requests_per_second: float | None = Field(
        None, gt=0, description="Override the rate limit (default: 3/s, or 10/s with an API key).")
    retry: RetrySettings = Field(default_factory=RetrySettings)


class CTGovSettings(BaseModel):
    base_url: str = Field("https://clinicaltrials.gov/api/v2/", description="ClinicalTrials.gov API v2 base URL.")
    page_size: int = Field(1000, ge=1, le=1000, description="Studies per page (the API's maximum is 1000).")
    requests_per_second: float = Field(3.0, gt=0, description="Client-side rate limit.")
    retry: RetrySettings = Field(default_factory=RetrySettings)
