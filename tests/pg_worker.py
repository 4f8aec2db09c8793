"""An ingest worker process for tests/test_pg_concurrency.py: one PubMed window into one catalog.

`python -m tests.pg_worker CATALOG_URL SINCE UNTIL` with the PubMed settings in the environment
(ONCOLIT_PUBMED__*). It runs the pipeline without the job lock, as a worker on another machine
would (the lock keeps *jobs* from overlapping; the catalog must stay right when writers do overlap),
and prints the run's summary as JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import sys

from ingest.catalog import Catalog
from ingest.pipeline import run_search
from ingest.pubmed import PubMedSource
from ingest.source import Query
from oncolit.settings import Settings


def main(url: str, since: str, until: str) -> None:
    settings = Settings(catalog_url=url)
    with Catalog(url) as catalog:
        summary = run_search(catalog, PubMedSource(settings.pubmed), query=Query("all[sb]"),
                             since=dt.date.fromisoformat(since), until=dt.date.fromisoformat(until))
    print(json.dumps(summary.as_dict()))


if __name__ == "__main__":
    main(*sys.argv[1:4])
