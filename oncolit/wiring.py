"""Builds the configured objects from settings: sources (and, later, stores, embedders, LLMs).

Settings hold values only; this is the one place that turns them into clients.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ingest.errors import ConfigError
from ingest.source import Source
from oncolit import __version__
from oncolit.settings import Settings

SOURCES = ("pubmed", "ctgov")


@contextmanager
def open_source(name: str, settings: Settings) -> Iterator[Source]:
    if name == "pubmed":
        from ingest.pubmed import PubMedSource
        yield PubMedSource(settings.pubmed)
    elif name == "ctgov":
        import httpx

        from ingest.clinicaltrials import ClinicalTrialsSource
        with httpx.Client(timeout=settings.ctgov.retry.timeout, follow_redirects=True,
                          headers={"User-Agent": f"oncolit/{__version__}"}) as client:
            yield ClinicalTrialsSource(settings.ctgov, client)
    else:
        raise ConfigError(f"unknown source {name!r}; choose one of {', '.join(SOURCES)}")
