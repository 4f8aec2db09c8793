"""The extraction cache in the catalog: findings, what verification dropped, and the grade, keyed by
(record id, version, model, prompt id).

Why that key: a result is a pure function of the record version, the model and the prompt (and
temperature 0 with a fixed seed), so a hit can be served without asking the model again; a
revised record, another model or a new prompt id simply gets its own row. `lacking()` lists the
record versions with no row for a key: a batch run that is killed resumes from there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from ingest.catalog.dialect import upsert
from ingest.records.article import Article
from ingest.records.trial import Trial
from synthesis.extract import DEFAULT_MAX_TOKENS, ExtractionResult, cache_key, extract, prefetch
from synthesis.findings import DroppedField, Findings
from synthesis.findings_models.runtime import FindingsModels
from synthesis.grading import Grade, grade
from synthesis.llm.base import LLM


@dataclass(frozen=True)
class StoredExtraction:
    record_id: str
    version: int
    model: str
    prompt_id: str
    findings: Findings
    dropped: list[DroppedField]
    grade: Grade | None
    created_at: dt.datetime
    seconds: float


def _row(result: ExtractionResult, grade: Grade | None, now: dt.datetime) -> dict[str, Any]:
    findings = result.findings
    if findings.version is None:
        raise ValueError(f"{findings.record_id}: findings without a record version cannot be cached")
    return {"record_id": findings.record_id, "version": findings.version, "model": result.model,
            "prompt_id": result.prompt_id, "findings": findings.model_dump(mode="json"),
            "dropped": [d.model_dump(mode="json") for d in result.dropped],
            "grade": grade.model_dump(mode="json") if grade else None, "created_at": now,
            "seconds": round(result.seconds, 4)}


def _key(record_id: str, version: int, model: str, prompt_id: str) -> Any:
    c = t.extractions.c
    return and_(c.record_id == record_id, c.version == version, c.model == model, c.prompt_id == prompt_id)


def put_many(catalog: Catalog, results: Sequence[tuple[ExtractionResult, Grade | None]]) -> int:
    """Store a batch in one transaction (replacing rows with the same key); returns the count."""
    if not results:
        return 0
    now = dt.datetime.now(dt.UTC)
    rows = [_row(result, grade, now) for result, grade in results]
    with catalog.transaction() as conn:  # one upsert: two workers caching the same key must not collide
        upsert(conn, t.extractions, rows, ["record_id", "version", "model", "prompt_id"])
    return len(rows)


def put(catalog: Catalog, result: ExtractionResult, grade: Grade | None = None) -> None:
    put_many(catalog, [(result, grade)])


def get(catalog: Catalog, record_id: str, version: int, model: str, prompt_id: str) -> StoredExtraction | None:
    with catalog.engine.connect() as conn:
        row = conn.execute(select(t.extractions).where(_key(record_id, version, model, prompt_id))).first()
    if row is None:
        return None
    return StoredExtraction(
        record_id=row.record_id, version=row.version, model=row.model, prompt_id=row.prompt_id,
        findings=Findings.model_validate(row.findings),
        dropped=[DroppedField.model_validate(d) for d in row.dropped],
        grade=Grade.model_validate(row.grade) if row.grade else None, created_at=row.created_at,
        seconds=row.seconds)


def set_grade(catalog: Catalog, record_id: str, version: int, model: str, prompt_id: str, grade: Grade) -> None:
    """Replace the stored grade (grading is cheap and its rubric may change; findings stay)."""
    with catalog.transaction() as conn:
        conn.execute(update(t.extractions).where(_key(record_id, version, model, prompt_id))
                     .values(grade=grade.model_dump(mode="json")))


def lacking(catalog: Catalog, model: str, prompt_id: str, *, kind: str | None = None,
            since: dt.date | None = None, ids: Iterable[str] | None = None,
            limit: int | None = None, include_done: bool = False) -> list[tuple[str, int]]:
    """(record id, current version) of active records with no extraction under (model, prompt id),
    in id order: the work list of a batch run, and what a resumed run picks up.

    `since` keeps records the catalog added or revised on or after that day; `kind` is
    "article" or "trial"; `ids` restricts to those records; `include_done` lists records that do
    have a result too (for a forced re-run).
    """
    r, e = t.records.c, t.extractions.c
    join = t.records.outerjoin(t.extractions, and_(
        e.record_id == r.id, e.version == r.current_version, e.model == model, e.prompt_id == prompt_id))
    query = (select(r.id, r.current_version).select_from(join)
             .where(r.state == "active", r.current_version > 0).order_by(r.id))
    if not include_done:
        query = query.where(e.record_id.is_(None))
    if kind:
        query = query.where(r.kind == kind)
    if since:
        query = query.where(r.updated_at >= dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC))
    id_list = list(ids) if ids is not None else None
    out: list[tuple[str, int]] = []
    chunks = [id_list[i:i + 500] for i in range(0, len(id_list), 500)] if id_list is not None else [None]
    with catalog.engine.connect() as conn:
        for chunk in chunks:
            q = query.where(r.id.in_(chunk)) if chunk is not None else query
            if limit is not None:
                q = q.limit(limit - len(out))
            out += [(row.id, row.current_version) for row in conn.execute(q)]
            if limit is not None and len(out) >= limit:
                break
    return out


def count(catalog: Catalog, model: str | None = None) -> int:
    """How many extractions are stored (for one model, or all)."""
    query = select(func.count()).select_from(t.extractions)
    if model:
        query = query.where(t.extractions.c.model == model)
    with catalog.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def extract_cached(catalog: Catalog, record_id: str, llm: LLM | None, *, version: int | None = None,
                   force: bool = False, max_tokens: int = DEFAULT_MAX_TOKENS,
                   models: FindingsModels | None = None) -> tuple[ExtractionResult, Grade]:
    """Findings and grade for a record version (the current one by default): from the cache when
    present (no model call), else extracted, graded and stored. The grade is always recomputed
    from the findings (cheap), so a changed rubric shows at once; it is stored when it changed."""
    info = catalog.get(record_id)
    version = version or info["version"]
    record = catalog.get_record(record_id, version)
    assert isinstance(record, (Article, Trial))
    model, prompt_id = cache_key(record, llm, models=models)
    hit = None if force else get(catalog, record_id, version, model, prompt_id)
    if hit is not None:
        result = ExtractionResult(hit.findings, hit.dropped, hit.findings.extraction.backend, model, prompt_id,
                                  hit.seconds, cached=True)
        fresh = grade(record, hit.findings, retracted=info["retracted"], deleted=info["deleted"])
        if hit.grade != fresh:
            set_grade(catalog, record_id, version, model, prompt_id, fresh)
        return result, fresh
    result = extract(record, llm, version=version, max_tokens=max_tokens, models=models)
    graded = grade(record, result.findings, retracted=info["retracted"], deleted=info["deleted"])
    put(catalog, result, graded)
    return result, graded


def extract_batch(catalog: Catalog, record_ids: Sequence[str], llm: LLM | None, *, force: bool = False,
                  max_tokens: int = DEFAULT_MAX_TOKENS,
                  models: FindingsModels | None = None) -> list[tuple[ExtractionResult, Grade]]:
    """Current versions of `record_ids`, from the cache or extracted; new results are stored in one
    transaction at the end, so a run killed mid-batch loses at most this batch."""
    out: list[tuple[ExtractionResult, Grade]] = []
    fresh: list[tuple[ExtractionResult, Grade]] = []
    rows = list(catalog.iter_records(record_ids, active_only=False))
    if models is not None:  # one batched pass of the findings models over the records not cached yet
        prefetch(models, [record for row, record in rows if row["current_version"] and (force or get(
            catalog, record.record_id, row["current_version"], *cache_key(record, llm, models=models)) is None)])
    for row, record in rows:
        version = row["current_version"]
        if not version or not isinstance(record, (Article, Trial)):
            continue
        model, prompt_id = cache_key(record, llm, models=models)
        hit = None if force else get(catalog, record.record_id, version, model, prompt_id)
        if hit is not None:
            result = ExtractionResult(hit.findings, hit.dropped, hit.findings.extraction.backend, model, prompt_id,
                                      hit.seconds, cached=True)
            out.append((result, hit.grade or grade(record, hit.findings, retracted=row["retracted"])))
            continue
        result = extract(record, llm, version=version, max_tokens=max_tokens, models=models)
        graded = grade(record, result.findings, retracted=row["retracted"], deleted=row["state"] == "deleted")
        fresh.append((result, graded))
        out.append((result, graded))
    put_many(catalog, fresh)
    return out
