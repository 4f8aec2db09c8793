"""`oncolit extract` and `oncolit grade`: findings and study-quality grades for catalog records.

Both are top-level commands (registered in `main.py` as `app.command("extract")(extract)` and
`app.command("grade")(grade)`). Results are cached in the catalog under (record version, model,
prompt id), so re-running skips finished work and a killed batch run resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import typer

from ingest.catalog import Catalog
from ingest.errors import CatalogError
from oncolit.cli.common import (
    EMPTY_CATALOG,
    JsonOpt,
    catalog_is_empty,
    cli_resources,
    emit,
    get_settings,
    parse_day,
    progress_bar,
)
from oncolit.ids import normalise_id
from synthesis import store
from synthesis.extract import DEFAULT_MAX_TOKENS, REGISTRY, TRIAL_ID, ExtractionResult, article_cache_key
from synthesis.extract import as_json as findings_json
from synthesis.grading import Grade, explain
from synthesis.llm import BACKENDS, LLM, LLMError

BackendOpt = typer.Option(None, "--backend", help=f"LLM backend: {' | '.join(BACKENDS)} (default: settings "
                                                  "llm.backend, or none when its model is not pulled). `none` = no "
                                                  "language model: rules + the findings models.")
ModelOpt = typer.Option(None, "--model", help="Registry name (smollm2-135m, qwen2.5-coder-1.5b) or a .gguf path "
                                              "(default: settings llm.model, else the registry default).")


def extract(
    ids: list[str] | None = typer.Argument(None, help="Record ids (pubmed:123, 123, NCT01234567). Default: every "
                                               "active record not yet extracted with this model and prompt."),
    since: str | None = typer.Option(None, "--since", help="Only records added or revised in the catalog on or after "
                                                    "DATE (YYYY-MM-DD)."),
    backend: str | None = BackendOpt,
    model: str | None = ModelOpt,
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="Extract at most this many records."),
    batch_size: int = typer.Option(10, "--batch-size", min=1, help="Records stored per transaction."),
    force: bool = typer.Option(False, "--force", help="Extract again even when a cached result exists."),
    max_tokens: int = typer.Option(DEFAULT_MAX_TOKENS, "--max-tokens", min=64, help="Model output limit."),
    as_json: bool = JsonOpt,
) -> None:
    """Extract findings (design, population, arms, outcomes with estimates, conclusion, quotes).

    Rules always run; with a model its answer is verified (numbers must occur in the record, quotes
    must be verbatim) and what fails is dropped and listed. Cached per (record version, model,
    prompt id): re-running skips done records, so an interrupted run resumes.

    With IDS and --json: the findings object for one id (the published schema,
    synthesis/schemas/findings.schema.json), a list for several. Without IDS: a run summary.

    Examples:
      oncolit extract pubmed:22663011 --json --backend none
      oncolit extract pubmed:22663011 --json --model smollm2-135m
      oncolit extract --since 2026-11-01 --limit 200
    """
    day = parse_day(since, "--since")
    if catalog_is_empty(get_settings(), open_it=False):
        raise CatalogError(EMPTY_CATALOG)
    with cli_resources(backend=backend, model=model, extractive_if_missing=True) as res:
        llm = res.llm  # first: a model that cannot load fails before the catalog is touched
        models = res.findings_models
        if ids:
            results = _by_ids(res.catalog, [normalise_id(i) for i in ids], llm, force, max_tokens, models)
            _emit_results(results, as_json)
        else:
            summary = _run(res.catalog, llm, day, limit, batch_size, force, max_tokens, models)
            emit(summary, as_json, _summary_text(summary))


def _by_ids(catalog: Catalog, ids: list[str], llm: LLM, force: bool,
            max_tokens: int, models: Any = None) -> list[tuple[ExtractionResult, Grade]]:
    out = []
    with progress_bar("extracting", total=len(ids)) as bar:
        for rid in ids:
            out.append(store.extract_cached(catalog, rid, llm, force=force, max_tokens=max_tokens, models=models))
            bar.advance(bar.task_ids[0])
    return out


def _run(catalog: Catalog, llm: LLM, since: dt.date | None, limit: int | None, batch_size: int, force: bool,
         max_tokens: int, models: Any = None) -> dict[str, Any]:
    """The batch run: records lacking a result for this model and prompt, in batches."""
    started = time.perf_counter()
    model, prompt_id = article_cache_key(llm, models=models)
    work = store.lacking(catalog, model, prompt_id, kind="article", since=since, limit=limit, include_done=force)
    if limit is None or len(work) < limit:
        work += store.lacking(catalog, REGISTRY, TRIAL_ID, kind="trial", since=since, include_done=force,
                              limit=None if limit is None else limit - len(work))
    counts = {"records": len(work), "extracted": 0, "cached": 0, "failed": 0, "dropped_fields": 0}
    errors: list[str] = []
    with progress_bar(f"extracting ({model})", total=len(work)) as bar:
        task = bar.task_ids[0]
        for i in range(0, len(work), batch_size):
            batch = [rid for rid, _ in work[i:i + batch_size]]
            try:
                done = store.extract_batch(catalog, batch, llm, force=force, max_tokens=max_tokens, models=models)
            except LLMError as exc:
                counts["failed"] += len(batch)
                errors.append(f"{batch[0]}..{batch[-1]}: {exc}")
                bar.advance(task, len(batch))
                continue
            for result, _grade in done:
                counts["cached" if result.cached else "extracted"] += 1
                counts["dropped_fields"] += len(result.dropped)
            bar.advance(task, len(batch))
    return {**counts, "model": model, "prompt_id": prompt_id, "seconds": round(time.perf_counter() - started, 2),
            "errors": errors[:20]}


def _emit_results(results: list[tuple[ExtractionResult, Grade]], as_json: bool) -> None:
    objects = [findings_json(r.findings) for r, _ in results]
    data: Any = objects[0] if len(objects) == 1 else objects
    lines = []
    for result, graded in results:
        f = result.findings
        design = f.design.replace("_", " ") if f.design else "design unknown"
        lines.append(f"{f.record_id} v{f.version}  {design}{' phase ' + f.phase if f.phase else ''}  level "
                     f"{graded.level}  {len(f.outcomes)} outcomes, {len(result.dropped)} dropped  "
                     f"({result.backend}, {'cached' if result.cached else f'{result.seconds:.2f} s'})")
        if f.interventions:
            lines.append(f"    arms: {'; '.join(f.interventions)}{' vs ' + f.comparator if f.comparator else ''}"
                         + (f"  (sizes: {', '.join(f'{a.name} n={a.n}' for a in f.arms)})" if f.arms else ""))
        two_arms = [*f.interventions, f.comparator] if len(f.interventions) == 1 and f.comparator else []
        for o in f.outcomes[:8]:
            lines.append("    " + _outcome_line(o, two_arms))
        for d in result.dropped[:10]:
            lines.append(f"    dropped {d.path}: {d.reason}")
    emit(data, as_json, "\n".join(lines))


def _arm_label(quote: str | None, value: float | None) -> str | None:
    """The arm a per-arm value belongs to, when its own sentence says so ("4.8 months in the trametinib group")."""
    if not quote or value is None:
        return None
    number = re.escape(f"{value:g}")
    match = re.search(rf"(?<![\d.]){number}(?![\d])[^,;.]{{0,20}}?\b(?:in|with|for|among) (?:the |those )?"
                      r"([\w+/-]+(?: [\w+/-]+){0,3}?) (?:group|arm|cohort)s?\b", quote)
    return match.group(1) if match else None


def _arm_labels(o: Any, two_arms: list[str]) -> list[str | None]:
    """A name per arm value: from its sentence, and in a two-arm study the other arm's name for the other value."""
    labels = [_arm_label(o.quote, v) for v in o.arm_values]
    known = [label.lower() for label in labels if label]
    if len(two_arms) == 2 and len(labels) == 2 and len(known) == 1:
        names = [n.lower() for n in two_arms]
        if known[0] in names:
            other = two_arms[1 - names.index(known[0])]
            labels = [label or other for label in labels]
    return labels


def _outcome_line(o: Any, two_arms: list[str] | None = None) -> str:
    """One outcome for people: name, estimate with its unit and CI, each arm's value named by its arm when the
    quote names it, direction with confidence, the comparison, provenance."""
    unit = ("" if o.unit == "%" else " ") + o.unit if o.unit else ""
    if o.value is not None:
        value = f"{o.measure + ' ' if o.measure and o.measure != 'other' else ''}{o.value:g}{unit}"
    elif o.arm_values:
        parts = [("NR" if v is None else f"{v:g}{unit}") + (f" ({label})" if label else "")
                 for v, label in zip(o.arm_values, _arm_labels(o, two_arms or []))]
        value = (f"{o.measure} " if o.measure and o.measure not in ("rate", "other") else "") + " vs ".join(parts)
    else:
        value = ""
    ci = f" (95% CI {o.ci_low:g}-{o.ci_high:g})" if o.ci_low is not None and o.ci_high is not None else ""
    p = f" p{o.p_comparator or '='}{o.p_value:g}" if o.p_value is not None else ""
    direction = f"  {o.direction}" + (f" ({o.confidence:.0%})" if o.confidence is not None else "") if o.direction else ""
    arms = f"  [{o.intervention or '?'} vs {o.comparator or '?'}]" if o.intervention or o.comparator else ""
    primary = "primary: " if o.primary else ""
    return f"{primary}{o.name[:60]}: {value}{ci}{p}{direction}{arms}  ({o.source})".replace(":   ", ": ")


def _summary_text(s: dict[str, Any]) -> str:
    text = (f"{s['records']} records: {s['extracted']} extracted, {s['cached']} cached, {s['failed']} failed; "
            f"{s['dropped_fields']} fields dropped by verification ({s['model']}, {s['prompt_id']}, {s['seconds']} s)")
    return "\n".join([text, *s["errors"]])


def grade(
    record_id: str = typer.Argument(..., help="pubmed:123, 123 or NCT01234567."),
    backend: str | None = BackendOpt,
    model: str | None = ModelOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Grade a record's evidence and explain it: design, level and every reason with its evidence.

    Levels (strongest first): 1a SR/MA of RCTs, 1b RCT phase III, 2a RCT phase II, 2b non-randomised
    controlled, 3a cohort, 3b case-control, 4a single-arm / cross-sectional, 4b case series/report,
    5 preclinical / narrative / opinion. See synthesis/GRADING.md.

    Examples:
      oncolit grade pubmed:22663011 --backend none
      oncolit grade NCT02576665 --json
    """
    if catalog_is_empty(get_settings(), open_it=False):
        raise CatalogError(EMPTY_CATALOG)
    with cli_resources(backend=backend, model=model, extractive_if_missing=True) as res:
        llm = res.llm  # first: a model that cannot load fails before the catalog is touched
        result, graded = store.extract_cached(res.catalog, normalise_id(record_id), llm,
                                              models=res.findings_models)
    data = {**graded.model_dump(mode="json"), "extraction": result.findings.extraction.model_dump(mode="json")}
    emit(data, as_json, explain(graded))
