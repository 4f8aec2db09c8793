"""`oncolit demo`: the main job end to end on the embedded defaults and the recorded data.

It starts the local replay server over `../shared/data`, points the real source clients at it,
and runs what the scheduler runs each day: ingest every saved search (PubMed through Bio.Entrez,
ClinicalTrials.gov through API v2), then the follow-on steps, printing a summary of each.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import typer

from ingest.errors import OncoLitError
from oncolit.cli.common import JsonOpt, emit, get_settings, open_catalog

DEFAULT_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
# The recorded PubMed files simulate daily arrival over these weekdays (see shared/data/README.md).
DEMO_WINDOW = (dt.date(2026, 11, 2), dt.date(2026, 11, 27))
DEMO_SEARCHES = [
    # (name, source, query, params)
    ("oncology-pubmed", "pubmed", "cancer OR neoplasms OR tumor OR carcinoma OR melanoma OR leukemia "
                                  "OR lymphoma OR oncology", {}),
]


def demo(
    shared: Path = typer.Option(DEFAULT_SHARED, help="The shared data folder (../shared/data)."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the main job (ingest -> ...) against the recorded data through the local replay server."""
    from ingest.pipeline import run_search
    from ingest.pubmed import PubMedSource
    from ingest.replay import ReplayServer

    pubmed_dir = shared / "pubmed" / "constructed"
    if not pubmed_dir.is_dir():
        raise OncoLitError(f"{pubmed_dir} not found: put the shared data beside the checkout or pass --shared")
    settings = get_settings()
    report: dict[str, Any] = {"data_dir": str(settings.data_dir), "steps": []}
    with ReplayServer(pubmed_dir=pubmed_dir, ctgov_dir=None) as server, open_catalog() as catalog:
        pubmed_settings = settings.pubmed.model_copy(update={"base_url": server.eutils_url,
                                                             "requests_per_second": 10.0})
        sources = {"pubmed": PubMedSource(pubmed_settings)}
        existing = {s["name"] for s in catalog.list_searches()}
        for name, source, query, params in DEMO_SEARCHES:
            if name not in existing:
                catalog.add_search(name, source, query, params, owner="demo", watermark=DEMO_WINDOW[0])
        for search in catalog.list_searches():
            if search["owner"] != "demo" or search["source"] not in sources:
                continue
            summary = run_search(catalog, sources[search["source"]], search=search, until=DEMO_WINDOW[1])
            report["steps"].append({"step": f"ingest {search['source']} {search['name']}", **summary.as_dict()})
        report["catalog"] = catalog.stats()
    text = "\n".join(f"{s['step']}: {json.dumps(s['counts'])} window {s['window']}" for s in report["steps"])
    emit(report, as_json, f"{text}\ncatalog: {json.dumps(report['catalog']['total'])}\ndata dir: {settings.data_dir}")
