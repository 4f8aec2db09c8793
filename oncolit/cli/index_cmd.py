"""`oncolit index …` and `oncolit search`: keep the vector index in step with the catalog, and query it."""

from __future__ import annotations

import time
from typing import Any

import typer

from ingest.errors import CatalogError, UsageError
from oncolit.cli.common import (EMPTY_CATALOG, EXIT_MISMATCH, EXIT_PARTIAL, JsonOpt, catalog_is_empty, check_limit, emit,
                                exit_with, get_settings, open_catalog, parse_range, progress_bar)

# The index, curation and store modules are imported inside the commands: `oncolit search --mode sparse` and
# `oncolit index --help` must not pay for what another command needs (numpy, qdrant, the catalog's tables).

app = typer.Typer(help="The vector index (Qdrant Edge by default; a Qdrant server by URL).", no_args_is_help=True)


def run_sync(*, full: bool = False) -> dict[str, Any]:
    """Sync (or rebuild) the configured index from the catalog. While `oncolit serve` owns the data dir, the
    server does it on the index it holds (`oncolit.via_server`); the report is the same either way."""
    from oncolit.jobs import sync_index
    from oncolit.via_server import SyncRequest, call_server
    from oncolit.wiring import open_index

    settings = get_settings()
    remote = call_server(settings, "/local/index/sync", SyncRequest(full=full))
    if remote is not None:
        return dict(remote)
    with open_catalog() as catalog, open_index(settings) as handle, progress_bar("index sync") as bar:
        return sync_index(settings, catalog, handle, full=full, progress=lambda n: bar.advance(bar.task_ids[0], n))


def _text(d: dict[str, Any]) -> str:
    regraded = (f"; regraded {d['records_regraded']} records in place ({d['points_regraded']} points, grading "
                f"{d['grading']})" if d["records_regraded"] else "")
    return (f"{d['collection']}: indexed {d['records_indexed']} records ({d['points_written']} points), removed "
            f"{d['records_removed']} records ({d['points_removed']} points){regraded}; {d['points_total']} points "
            f"in all; {d['timings']['total']}s")


@app.command("sync")
def sync(as_json: bool = JsonOpt) -> None:
    """Index what changed in the catalog since the last sync (new versions, deletions, retractions)."""
    data = run_sync()
    emit(data, as_json, _text(data))


@app.command("rebuild")
def rebuild(as_json: bool = JsonOpt) -> None:
    """Drop the collection and index the whole catalog again."""
    data = run_sync(full=True)
    emit(data, as_json, _text(data))


@app.command("verify")
def verify(repair: bool = typer.Option(False, "--repair", help="Re-sync missing records, delete leaked points."),
           as_json: bool = JsonOpt) -> None:
    """Compare the whole index with the catalog: records without their points, points of deleted,
    retracted, excluded or unknown records, grades written by another grading. Exits 4 if they
    disagree (0 once --repair fixed it).

    Examples:
      oncolit index verify --json
      oncolit index verify --repair
    """
    from oncolit.via_server import VerifyRequest, call_server, verify_payload
    from oncolit.wiring import open_index

    settings = get_settings()
    request = VerifyRequest(repair=repair)
    data = call_server(settings, "/local/index/verify", request)
    if data is None:
        with open_catalog() as catalog, open_index(settings) as handle:
            data = verify_payload(catalog, handle, request)
    after = data.get("after_repair", data)
    emit(data, as_json, _verify_text(data))
    if not after["ok"]:
        code = EXIT_PARTIAL if repair else EXIT_MISMATCH
        exit_with(code, "error: the index still differs from the catalog after --repair; try `oncolit index rebuild`"
                  if repair else "the index differs from the catalog; run `oncolit index verify --repair`")


@app.command("export-onnx")
def export_onnx(as_json: bool = JsonOpt) -> None:
    """Export the embedding model and the reranker to ONNX once (needs torch and onnx), so searches run without torch.

    With embedding.backend = sentence-transformers on the CPU and onnxruntime installed, `oncolit search`
    (and ask, the HTTP API) then embed each query and rerank with ONNX Runtime: the same vectors and scores to
    float rounding, the same collection and cache, and no torch to load (about 1 s a search instead of 7).
    Passages are still embedded by the configured backend. The exports are kept in <data dir>/models/onnx.

    Examples:
      oncolit index export-onnx
      oncolit index export-onnx --json
    """
    from oncolit.wiring import export_onnx_model

    settings = get_settings()
    started = time.perf_counter()
    paths = export_onnx_model(settings)
    data: dict[str, Any] = {"onnx": str(paths["embedder"]), "reranker": str(paths["reranker"]) if "reranker" in paths
                            else None, "seconds": round(time.perf_counter() - started, 3)}
    emit(data, as_json, "\n".join(f"{what}: {path} ({path.stat().st_size / 1e6:.0f} MB)" for what, path in paths.items()))


def _verify_text(d: dict[str, Any]) -> str:
    lines = [f"{d['collection']}: {d['records_checked']} records, {d['points_checked']} points checked"]
    if d["ok"]:
        lines.append("index and catalog agree")
    for rid in d["missing"]:
        lines.append(f"missing    {rid}: no points")
    for m in d["mismatched"]:
        lines.append(f"mismatched {m['record_id']} v{m['version']}: {m['absent_points']} points absent, "
                     f"{m['extra_points']} extra")
    for leak in d["leaked"]:
        lines.append(f"leaked     {leak['record_id']} ({leak['reason']}): {leak['points']} points")
    if d["grading_stale"]:
        lines.append(f"stale      designs and evidence levels are not those of grading {d['grading']}")
    if "after_repair" in d:
        lines.append("repaired: index and catalog agree" if d["after_repair"]["ok"] else "repair incomplete")
    return "\n".join(lines)


def record_link(record_id: str) -> str:
    """Where a person reads the record: PubMed or ClinicalTrials.gov."""
    kind, _, ident = record_id.partition(":")
    if kind == "pubmed" and ident.isdigit():
        return f"https://pubmed.ncbi.nlm.nih.gov/{ident}/"
    if kind == "ctgov":
        return f"https://clinicaltrials.gov/study/{ident}"
    return record_id


def hit_text(r: dict[str, Any]) -> str:
    """One result for a person: rank, title, year · journal · design · level, a 0-1 relevance when the reranker
    read it, the passage, and a link. The raw fusion score is only in --json (its scale means nothing)."""
    from oncolit.cli.terminal import safe_text

    facts = [str(r["published"])[:4] if r.get("published") else None, r.get("journal"),
             (r.get("design") or "").replace("_", " ") or None,
             f"level {r['evidence_level']}" if r.get("evidence_level") is not None else "not graded",
             r.get("trial_status"), "/".join(r.get("phases") or []) or None,
             f"relevance {r['relevance']:.2f}" if r.get("relevance") is not None else None]
    title = r["title"] if r["title"] and not r["title"].startswith("[Not Available]") else "(no title)"  # PubMed's
    head = f"{r['rank']:>2}. {safe_text(title)}"
    return "\n".join([head, "    " + " · ".join(safe_text(str(f)) for f in facts if f),
                      "    " + safe_text(r["passage"][:300]),
                      f"    {r['record_id']}  {record_link(r['record_id'])}"])


def search(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    type_: str = typer.Option(None, "--type", help="article or trial."),
    since: str = typer.Option(None, help="Published on or after (YYYY-MM-DD)."),
    until: str = typer.Option(None, help="Published on or before (YYYY-MM-DD)."),
    design: list[str] = typer.Option([], help="Study design (rct, meta_analysis, cohort, ...); repeatable."),
    status: list[str] = typer.Option([], help="Trial status (RECRUITING, COMPLETED, ...); repeatable."),
    phase: list[str] = typer.Option([], help="Trial phase (PHASE2, PHASE3, ...); repeatable."),
    language: list[str] = typer.Option([], help="Language code (eng, fre, ...); repeatable."),
    site: list[str] = typer.Option([], help="Cancer site / MeSH term; repeatable."),
    max_level: int = typer.Option(None, min=1, help="Keep evidence levels up to this one (1 = strongest; the "
                                  "number of the grade: 2 keeps 1a-2b). Drops ungraded records."),
    include_retracted: bool = typer.Option(False, help="Also return retracted records."),
    mode: str = typer.Option("hybrid", help="hybrid, dense or sparse."),
    rerank: bool = typer.Option(None, "--rerank/--no-rerank", help="Reorder the top records with the trained "
                                                                   "reranker (default: search.rerank_by_default, "
                                                                   "off out of the box)."),
    expand: bool = typer.Option(None, "--expand/--no-expand", help="Add synonyms the catalog's records define "
                                                                   "(NSCLC <-> non-small cell lung cancer, brand <-> "
                                                                   "generic names) to the query (default: the "
                                                                   "search.expand_queries setting)."),
    limit: int = typer.Option(10, "--limit", "-n", help="How many records."),
    as_json: bool = JsonOpt,
) -> None:
    """Search the evidence base: ranked records with scores and the matching passage.

    Examples:
      oncolit search "adjuvant pembrolizumab melanoma" --type article --since 2020-01-01
      oncolit search "EGFR exon 19 deletion osimertinib" --type trial --status RECRUITING --json
      oncolit search "non-small cell lung cancer" --mode sparse --expand --json   # "expansions" lists what was added
    """
    if mode not in ("hybrid", "dense", "sparse"):
        raise typer.BadParameter("--mode is hybrid, dense or sparse")
    if type_ is not None and type_ not in ("article", "trial"):
        raise typer.BadParameter("--type is article or trial")
    check_limit(limit)
    published_from, published_to = parse_range(since, until)
    from oncolit.via_server import SearchRequest, call_server, search_payload

    request = SearchRequest(query=query, type=type_, since=published_from, until=published_to, design=design,
                            status=status, phase=phase, language=language, site=site, max_level=max_level,
                            include_retracted=include_retracted, mode=mode, rerank=rerank, expand=expand,
                            limit=limit)
    settings = get_settings()
    if catalog_is_empty(settings, open_it=False):
        raise CatalogError(EMPTY_CATALOG)
    if rerank and settings.search.reranker == "none":
        raise UsageError("--rerank needs a reranker: set search.reranker to 'shipped' "
                         "(ONCOLIT_SEARCH__RERANKER=shipped) or to an artifact folder")
    data = call_server(settings, "/local/search", request, timeout=settings.index.wait_seconds)
    if data is None:
        from oncolit.resources import open_resources

        with open_resources(settings) as res:  # the curated searcher: a record excluded a second ago is not shown
            data = search_payload(res.searcher, request)
    if not data["results"] and catalog_is_empty(settings, open_it=True):
        raise CatalogError(EMPTY_CATALOG)
    text = "\n\n".join(hit_text(r) for r in data["results"]) or "no matching records"
    if data["expansions"]:
        text = "also searched: " + "; ".join(f"{e['matched']} -> {e['synonym']}" for e in data["expansions"]) \
            + "\n\n" + text
    emit(data, as_json, text)
