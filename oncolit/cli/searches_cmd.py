"""`oncolit searches …`: saved searches, each with its own watermark.

The operator's short form of `oncolit curate sources`: no curation user or role is needed (shell access to
the data dir is the operator's authority), but every change is written to the same audit log, under
$ONCOLIT_USER or the OS user."""

from __future__ import annotations

import typer

from oncolit.cli.common import JsonOpt, emit, open_catalog, parse_day
from oncolit.cli.curate_cmd import AsOpt, _params, actor, curation

app = typer.Typer(help="Saved searches: what OncoLit watches in each source.", no_args_is_help=True)


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Short unique name, e.g. melanoma-rct."),
    source: str = typer.Option("pubmed", help="pubmed or ctgov."),
    query: str = typer.Option(..., help="PubMed query, or CT.gov condition/term text."),
    param: list[str] = typer.Option([], help="Extra source parameter KEY=VALUE (CT.gov: cond, term, intr, ...)."),
    schedule: str = typer.Option(None, help="Cron expression (default: settings.schedule.ingest_cron)."),
    owner: str = typer.Option(None, help="Who maintains this search."),
    since: str = typer.Option(None, help="Start the watermark here (default: a few days back on first run)."),
    as_: str = AsOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Add a saved search.

    Examples:
      oncolit searches add melanoma --query "melanoma[mh] AND clinical trial[pt]"
      oncolit searches add nsclc-trials --source ctgov --query "non-small cell lung cancer" --param term=EGFR
    """
    start = parse_day(since, "--since")
    with curation() as cur:
        row = cur.operator_add_search(actor(as_), name, source, query, _params(param), schedule=schedule,
                                      owner=owner, watermark=start)
    emit(row, as_json, f"added {source} search {name!r}")


@app.command("list")
def list_(as_json: bool = JsonOpt) -> None:
    """List saved searches with their watermarks."""
    with open_catalog() as catalog:
        rows = catalog.list_searches()
    text = "\n".join(f"{r['name']:<24} {r['source']:<7} {'active' if r['active'] else 'paused':<7} "
                     f"watermark={r['watermark'] or '-'}  {r['query']}" for r in rows) or "no saved searches"
    emit(rows, as_json, text)


@app.command("remove")
def remove(name: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Remove a saved search (its records stay in the catalog)."""
    with curation() as cur:
        cur.operator_remove_search(actor(as_), name)
    emit({"removed": name}, as_json, f"removed {name!r}")
