"""`oncolit searches …`: saved searches, each with its own watermark."""

from __future__ import annotations

import typer

from ingest.errors import OncoLitError
from oncolit.cli.common import JsonOpt, emit, open_catalog, parse_day

app = typer.Typer(help="Saved searches: what OncoLit watches in each source.", no_args_is_help=True)
SOURCES = ("pubmed", "ctgov")


def _params(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param takes KEY=VALUE, not {value!r}")
        out[key] = val
    return out


@app.command("add")
def add(
    name: str = typer.Argument(..., help="Short unique name, e.g. melanoma-rct."),
    source: str = typer.Option("pubmed", help="pubmed or ctgov."),
    query: str = typer.Option(..., help="PubMed query, or CT.gov condition/term text."),
    param: list[str] = typer.Option([], help="Extra source parameter KEY=VALUE (CT.gov: cond, term, intr, ...)."),
    schedule: str = typer.Option(None, help="Cron expression (default: settings.schedule.ingest_cron)."),
    owner: str = typer.Option(None, help="Who maintains this search."),
    since: str = typer.Option(None, help="Start the watermark here (default: a few days back on first run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Add a saved search.

    Examples:
      oncolit searches add melanoma --query "melanoma[mh] AND clinical trial[pt]"
      oncolit searches add nsclc-trials --source ctgov --query "non-small cell lung cancer" --param term=EGFR
    """
    if source not in SOURCES:
        raise OncoLitError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if schedule:
        from apscheduler.triggers.cron import CronTrigger
        try:
            CronTrigger.from_crontab(schedule)
        except ValueError as exc:
            raise OncoLitError(f"invalid cron expression {schedule!r}: {exc}") from exc
    start = parse_day(since, "--since")
    with open_catalog() as catalog:
        row = catalog.add_search(name, source, query, _params(param), schedule, owner,
                                 watermark=start)
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
def remove(name: str, as_json: bool = JsonOpt) -> None:
    """Remove a saved search (its records stay in the catalog)."""
    with open_catalog() as catalog:
        catalog.remove_search(name)
    emit({"removed": name}, as_json, f"removed {name!r}")
