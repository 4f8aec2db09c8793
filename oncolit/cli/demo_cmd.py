"""`oncolit demo`: the main job end to end on the embedded defaults and the recorded data.

It starts the local replay server over `../shared/data`, points the real source clients at it,
and runs what the scheduler runs each day: ingest every saved search (PubMed through Bio.Entrez,
ClinicalTrials.gov through API v2), then the follow-on steps, printing a summary of each.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from ingest.errors import OncoLitError
from oncolit.cli.common import JsonOpt, cli_resources, emit, get_settings, open_catalog
from oncolit.wiring import open_source
from synthesis.digest import Topic

DEFAULT_SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
# The recorded PubMed files simulate daily arrival over these weekdays (see shared/data/README.md).
DEMO_UNTIL = dt.date(2026, 11, 27)
DEMO_QUESTION = "BRAF V600 mutant melanoma treated with a MEK inhibitor"
DEMO_ASK = "Does MEK inhibition with trametinib improve progression-free survival in BRAF V600 melanoma?"
DEMO_SUBSCRIBER = "demo.oncologist@example.org"
DEMO_TOPICS = [Topic(name="Melanoma", query="melanoma BRAF MEK immunotherapy", sites=[]),
               Topic(name="Lung cancer", query="non-small cell lung cancer EGFR", sites=[]),
               Topic(name="Breast cancer", query="breast cancer sentinel node chemotherapy", sites=[])]
DEMO_SEARCHES = [
    # (name, source, query, first day of the window)
    ("oncology-pubmed", "pubmed", "cancer OR neoplasms OR tumor OR tumour OR carcinoma OR melanoma OR leukemia "
                                  "OR lymphoma OR oncology OR metastasis", dt.date(2026, 11, 2)),
    # The recorded CT.gov studies with a last-update date are spread over years: a wide window.
    ("all-trials", "ctgov", "", dt.date(2015, 1, 1)),
]


class Progress:
    """A line on stderr when each step starts and when it ends, with its time: the demo runs for minutes, and
    where no terminal shows a bar (a CI log, `nohup`, a pipe) these lines are the only sign of life. stdout
    keeps the summary (or the JSON) alone."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.started = total, 0, time.monotonic()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.n += 1
        t0 = time.monotonic()
        print(f"[{self.n}/{self.total}] {name} ...", file=sys.stderr, flush=True)
        yield
        print(f"[{self.n}/{self.total}] {name}: done in {time.monotonic() - t0:.1f}s "
              f"({time.monotonic() - self.started:.0f}s so far)", file=sys.stderr, flush=True)


def demo(
    shared: Path = typer.Option(DEFAULT_SHARED, help="The shared data folder (../shared/data)."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the main job (ingest -> ...) against the recorded data through the local replay server."""
    from ingest.ctgov_json import iter_ctgov_path
    from ingest.pipeline import run_files, run_search
    from ingest.pubmed_xml import iter_pubmed_file
    from ingest.replay import ReplayServer

    pubmed_dir, ctgov_dir = shared / "pubmed" / "constructed", shared / "ctgov" / "real"
    for folder in (pubmed_dir, ctgov_dir):
        if not folder.is_dir():
            raise OncoLitError(f"{folder} not found: put the shared data beside the checkout or pass --shared")
    settings = get_settings()
    report: dict[str, Any] = {"data_dir": str(settings.data_dir), "steps": []}
    progress = Progress(len(DEMO_SEARCHES) + 6)
    with ReplayServer(pubmed_dir=pubmed_dir, ctgov_dir=ctgov_dir) as server, open_catalog() as catalog:
        # The real clients, pointed at the local replay of the recorded responses.
        replayed = settings.model_copy(update={
            "pubmed": settings.pubmed.model_copy(update={"base_url": server.eutils_url, "requests_per_second": 10.0}),
            "ctgov": settings.ctgov.model_copy(update={"base_url": server.ctgov_url, "requests_per_second": 10.0}),
        })
        existing = {s["name"] for s in catalog.list_searches()}
        for name, source, query, since in DEMO_SEARCHES:
            if name not in existing:
                catalog.add_search(name, source, query, {}, owner="demo", watermark=since)
        for name, source, _query, _since in DEMO_SEARCHES:
            with progress.step(f"ingest {source} {name} (replayed)"), open_source(source, replayed) as client:
                summary = run_search(catalog, client, search=catalog.get_search(name), until=DEMO_UNTIL)
            report["steps"].append({"step": f"ingest {source} {name}", **summary.as_dict()})
        # Bulk path: real efetch responses recorded from PubMed (older entry dates than the window).
        real = shared / "pubmed" / "real"
        recorded_xml = [real / "biomcp" / "efetch_citation_22663011.xml",
                        *sorted((real / "biopython" / "entrez").glob("pubmed*.xml"))]
        with progress.step("ingest pubmed-files (recorded efetch)"):
            summary = run_files(catalog, "pubmed", recorded_xml, iter_pubmed_file)
        report["steps"].append({"step": "ingest pubmed-files recorded efetch", **summary.as_dict()})
        # Bulk path: oncology studies recorded from the live API (melanoma, NSCLC EGFR, pembrolizumab).
        recorded = sorted(p for p in (ctgov_dir / "biomcp").glob("*.json") if p.name.startswith(("get_", "search_")))
        with progress.step("ingest ctgov-files (recorded studies)"):
            summary = run_files(catalog, "ctgov", recorded, iter_ctgov_path)
        report["steps"].append({"step": "ingest ctgov-files biomcp", **summary.as_dict()})
        report["catalog"] = catalog.stats()
    # Follow-on steps of the daily chain (outside the replay: they work from the catalog alone).
    from oncolit.cli.index_cmd import run_sync
    from oncolit.delivery.run import run_digests
    from oncolit.delivery.subscribers import add_subscriber, list_subscribers
    from synthesis.answer import answer

    with progress.step("index sync (embeds new chunks: minutes on 2 cores the first time)"):
        synced = run_sync()
    report["steps"].append({"step": "index sync", **synced})
    # One set of resources for the rest: the index and the model are opened once.
    with cli_resources() as res:
        with progress.step("search"):
            hits = res.index.searcher().search(DEMO_QUESTION, limit=3)
        report["search"] = {"query": DEMO_QUESTION, "results": [h.as_dict() for h in hits]}
        # The end of the chain: a digest for a demo subscriber (written as files, not sent) ...
        out_dir = settings.data_dir / "demo-digests"
        catalog = res.catalog
        if not any(sub.email == DEMO_SUBSCRIBER for sub in list_subscribers(catalog)):
            add_subscriber(catalog, DEMO_SUBSCRIBER, DEMO_TOPICS, name="Demo Oncologist", min_level=None)
        subscriber = next(sub for sub in list_subscribers(catalog) if sub.email == DEMO_SUBSCRIBER)
        with progress.step("digest (written as files, not sent)"):
            report["digest"] = run_digests(settings, catalog, subscribers=[subscriber], day=DEMO_UNTIL,
                                           dry_run=True, out_dir=out_dir, resources=res)
        # ... and one question answered with verified citations.
        with progress.step("ask"):
            report["answer"] = answer(DEMO_ASK, res.searcher, res.catalog, res.llm).as_dict()
    text = "\n".join(
        f"{s['step']}: {json.dumps(s['counts'])} window {s['window']}" if "counts" in s else
        f"{s['step']}: {s['records_indexed']} records indexed, {s['points_total']} points ({s['timings']['total']}s)"
        for s in report["steps"])
    text += f"\nsearch {DEMO_QUESTION!r}:\n" + "\n".join(
        f"  {r['rank']}. {r['record_id']} {shown_title(r['title'], r.get('passage') or '')}"
        for r in report["search"]["results"])
    written = [r for r in report["digest"].get("results", [])]
    text += "\ndigest: " + "; ".join(f"{r['subscriber']}: {r['items']} items -> {r['files'].get('eml', r['status'])}" for r in written)
    ans = report["answer"]
    text += f"\nask {DEMO_ASK!r}:\n  {ans['answer'][:600]}\n  cites: {', '.join(c['id'] for c in ans['citations'])}"
    emit(report, as_json, f"{text}\ncatalog: {json.dumps(report['catalog']['total'])}\ndata dir: {settings.data_dir}\n"
         + "\n".join(next_steps(written)))


def shown_title(title: str, passage: str, width: int = 90) -> str:
    """A result's title for a person; most of the recorded corpus (the Hallmarks of Cancer abstracts) has none
    ("[Not Available]." as PubMed writes it), so those show the start of their best passage instead."""
    if title.strip() and not title.startswith("[Not Available]"):
        return title[:width]
    lead, room = " ".join(passage.split()), width - len("(no title) ")
    return "(no title) " + (lead[: room - 3] + "..." if len(lead) > room else lead)


def next_steps(digests: list[dict[str, Any]]) -> list[str]:
    """What to open and run after the demo: its digest files and the commands that read what it built."""
    lines = ["next:"]
    for r in digests:
        files = r.get("files", {})
        if files.get("html"):
            lines.append(f"  open the digest in a browser:    {files['html']}")
        if files.get("eml"):
            lines.append(f"  or in a mail client:             {files['eml']}")
    lines += ["  search the catalog:              oncolit search \"trametinib melanoma\" -n 5",
              "  grade a record, and why:         oncolit grade pubmed:22663011",
              "  the API and librarian pages:     oncolit serve  (then http://127.0.0.1:8000/docs, /librarian/)",
              "  a first admin and key:           see README, \"The first admin, a key, and logging in\""]
    return lines
