"""`oncolit ingest …`: pull records from a source or from downloaded files into the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ingest.errors import OncoLitError, PartialRun
from ingest.lock import IngestLock, job_lock
from oncolit.cli.common import (
    EXIT_PARTIAL,
    JsonOpt,
    emit,
    exit_with,
    get_settings,
    open_catalog,
    parse_range,
    progress_bar,
)

if TYPE_CHECKING:  # the pipeline (the catalog, the parsers) is imported by the commands that run it
    from ingest.pipeline import RunSummary

app = typer.Typer(help="Pull new and revised records into the catalog.", no_args_is_help=True)


def _lock() -> IngestLock:
    """The data dir's file lock on SQLite, an advisory lock on a PostgreSQL catalog (`ingest.lock`)."""
    s = get_settings()
    return job_lock(s.resolved_catalog_url, s.ensure_data_dir(), "ingest", wait=5.0)


def _describe(summary: RunSummary) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "no records"
    where = f" {summary.search}" if summary.search else ""
    window = f" {summary.window[0]}..{summary.window[1]}" if summary.window else ""
    mark = f"; watermark -> {summary.watermark_after}" if summary.watermark_after else ""
    status = "" if summary.status == "ok" else f" [{summary.status}]"
    return (f"{summary.source}{where}{window}{status}: {counts} in {summary.batches} batches "
            f"({summary.seconds:.1f}s){mark}")


def _expand(paths: list[Path], patterns: tuple[str, ...]) -> list[Path]:
    """Files named, and the matching files under folders named. A folder with none is an error: a
    run that does nothing must not look like one that did everything."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for pat in patterns for p in path.rglob(pat))
            if not found:
                raise OncoLitError(f"{path} holds no {' or '.join(patterns)} files: nothing to ingest; "
                                   "check the path (folders are searched recursively)")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise OncoLitError(f"{path} does not exist")
    return files


def _finish(summaries: list[RunSummary]) -> None:
    """Exit 3 (after the normal output) when a run is not `ok`, saying what was committed and what not."""
    unfinished = [s for s in summaries if s.status != "ok"]
    if unfinished:
        failed_files = any(f.status == "failed" for s in unfinished for f in s.file_results)
        parts = [f"{s.source}{' ' + s.search if s.search else ''}: committed {s.committed()}; "
                 + "; ".join(s.problems()) for s in unfinished]
        exit_with(EXIT_PARTIAL, ("error: " if failed_files else "partial: ") + " | ".join(parts))


@app.command("pubmed")
def pubmed(
    search: str = typer.Option(None, "--search", help="Saved search to run (default: every active PubMed search)."),
    query: str = typer.Option(None, "--query", help="Ad-hoc PubMed query (no watermark is kept)."),
    since: str = typer.Option(None, help="First day of the window (YYYY-MM-DD); default: the watermark."),
    until: str = typer.Option(None, help="Last day of the window (YYYY-MM-DD); default: today."),
    as_json: bool = JsonOpt,
) -> None:
    """Fetch new and revised PubMed records through E-utilities.

    Examples:
      oncolit ingest pubmed --search melanoma
      oncolit ingest pubmed --query "breast neoplasms[mh] AND randomized controlled trial[pt]" --since 2026-11-01
    """
    _ingest_source("pubmed", search, query, since, until, as_json)


@app.command("ctgov")
def ctgov(
    search: str = typer.Option(None, "--search", help="Saved search to run (default: every active CT.gov search)."),
    query: str = typer.Option(None, "--query", help="Ad-hoc condition/term query (no watermark is kept)."),
    since: str = typer.Option(None, help="First last-update day of the window (YYYY-MM-DD); default: the watermark."),
    until: str = typer.Option(None, help="Last day of the window (YYYY-MM-DD); default: today."),
    as_json: bool = JsonOpt,
) -> None:
    """Fetch new and updated ClinicalTrials.gov studies through API v2.

    Examples:
      oncolit ingest ctgov --search nsclc-trials
      oncolit ingest ctgov --query "melanoma" --since 2026-08-01
    """
    _ingest_source("ctgov", search, query, since, until, as_json)


def _ingest_source(name: str, search: str | None, query: str | None, since: str | None, until: str | None,
                   as_json: bool) -> None:
    from oncolit.wiring import open_source

    start, end = parse_range(since, until)
    with open_source(name, get_settings()) as source:
        summaries = _run_searches(source, name, search, query, start, end)
    emit([s.as_dict() for s in summaries], as_json, "\n".join(_describe(s) for s in summaries))
    _finish(summaries)


def _run_searches(source: Any, source_name: str, search: str | None, query: str | None, since: Any,
                  until: Any) -> list[RunSummary]:
    from ingest.pipeline import run_search
    from ingest.source import Query

    settings = get_settings()
    if search and query:
        raise typer.BadParameter("give --search or --query, not both")
    with _lock(), open_catalog() as catalog:
        if query:
            targets: list[dict[str, Any] | None] = [None]
        elif search:
            found = catalog.get_search(search)
            if found["source"] != source_name:
                raise OncoLitError(f"saved search {search!r} is for {found['source']}, not {source_name}")
            targets = [found]
        else:
            targets = [s for s in catalog.list_searches(source_name) if s["active"]]
            if not targets:
                raise OncoLitError(f"no active {source_name} saved searches; add one with "
                                   f"`oncolit searches add NAME --source {source_name} --query ...` or use --query")
        summaries: list[RunSummary] = []
        for target in targets:
            try:
                with progress_bar(f"{source_name} {target['name'] if target else 'query'}") as bar:
                    summaries.append(run_search(
                        catalog, source, search=target, query=Query(query) if target is None else None,
                        since=since, until=until, initial_lookback_days=settings.initial_lookback_days,
                        progress=lambda n, _c: bar.advance(bar.task_ids[0], n)))
            except OncoLitError as exc:
                if not summaries:
                    raise
                done = "; ".join(f"{s.search}: {s.status}, {s.committed()}" for s in summaries)
                raise PartialRun(f"{target['name'] if target else 'query'}: {exc} — the searches before it "
                                 f"were committed ({done})") from exc
    return summaries


@app.command("pubmed-files")
def pubmed_files(
    paths: list[Path] = typer.Argument(..., help="PubmedArticleSet XML files (plain or .gz) or folders."),
    batch_size: int = typer.Option(500, help="Records per catalog transaction."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest PubMed baseline/update files (how large backfills are done).

    Example: oncolit ingest pubmed-files pubmed26n1234.xml.gz updates/
    """
    from ingest.pipeline import run_files
    from ingest.pubmed_xml import iter_pubmed_file

    files = _expand(paths, ("*.xml", "*.xml.gz"))
    with _lock(), open_catalog() as catalog, progress_bar("pubmed files") as bar:
        summary = run_files(catalog, "pubmed", files, iter_pubmed_file, batch_size=batch_size,
                            progress=lambda n, _c: bar.advance(bar.task_ids[0], n))
    emit(summary.as_dict(), as_json, _describe(summary))
    _finish([summary])


@app.command("ctgov-files")
def ctgov_files(
    paths: list[Path] = typer.Argument(..., help="API v2 JSON: single studies, /studies pages, folders or .zip."),
    batch_size: int = typer.Option(500, help="Studies per catalog transaction."),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest ClinicalTrials.gov API v2 JSON files (as from the bulk JSON download).

    Example: oncolit ingest ctgov-files ctg-studies.json.zip studies/
    """
    from ingest.ctgov_json import iter_ctgov_path
    from ingest.pipeline import run_files

    files = _expand(paths, ("*.json", "*.zip"))
    with _lock(), open_catalog() as catalog, progress_bar("ctgov files") as bar:
        summary = run_files(catalog, "ctgov", files, iter_ctgov_path, batch_size=batch_size,
                            progress=lambda n, _c: bar.advance(bar.task_ids[0], n))
    emit(summary.as_dict(), as_json, _describe(summary))
    _finish([summary])
