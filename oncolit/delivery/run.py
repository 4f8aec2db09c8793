"""Build and send digests: the scheduler step (`run_digests`) and what `oncolit digest` calls.

For each active subscriber, in order:
1. resend digests built earlier whose send was refused or failed (stored bytes, same Message-ID);
2. if the current period's digest is due (the subscriber's local send time has passed) and was
   never built, build it, store it with a `pending` log row, then send it.
A digest is never built twice for a period and a sent one is never sent again (`sendlog`). One
process at a time runs this (a lock file beside the ingest lock); a busy lock skips the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ingest.catalog import Catalog
from ingest.curation import without_excluded
from ingest.lock import LockBusy, job_lock
from oncolit.delivery import links, render, sendlog
from oncolit.delivery.settings import DigestSettings, SmtpSettings, delivery_settings, sender_domain
from oncolit.delivery.smtp import DeliveryError, send
from oncolit.delivery.subscribers import Period, Subscriber, current_period, list_subscribers, period_for
from oncolit.resources import Resources, open_resources
from synthesis.digest import (
    Candidate,
    DigestConfig,
    IndexScorer,
    SemanticScorer,
    build_digest,
    candidates,
    window_after,
)
from synthesis.llm import LLM
from synthesis.llm.none_backend import NoneLLM

log = logging.getLogger(__name__)
_DEFAULT: Any = object()


@dataclass
class Result:
    subscriber: str
    period: str
    status: str  # sent | failed | gave_up | already_sent | empty | not_due | dry_run | error
    message_id: str | None = None
    items: int = 0
    alerts: int = 0
    attempts: int = 0
    built: bool = False
    error: str | None = None
    replaced: int = 0
    dropped: int = 0
    cited: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _RunResources:
    """What digests draw on besides the catalog, from the run's `Resources`: the curation policy, the LLM
    and the index, the last two loaded only if a digest is actually built, once per run."""

    def __init__(self, settings: Any, resources: Resources, llm: Any, scorer: Any):
        self.settings, self.resources = settings, resources
        self._llm: LLM | None = llm
        self._scorer: SemanticScorer | None = scorer
        self.pools: dict[tuple[Any, Any], list[Candidate]] = {}

    def llm(self) -> LLM | None:
        if self._llm is _DEFAULT:
            self._llm = overview_llm(self.settings, self.resources)
        return self._llm

    def scorer(self) -> SemanticScorer | None:
        if self._scorer is _DEFAULT:
            self._scorer = index_scorer(self.settings, self.resources)
        return self._scorer


def overview_llm(settings: Any, resources: Resources) -> LLM:
    """The resources' LLM for overviews; `NoneLLM` (overviews are then extractive quotes) when overviews
    are off or the model cannot be opened."""
    _, cfg = delivery_settings(settings)
    if not cfg.overview:
        return NoneLLM()
    try:
        return resources.llm
    except Exception as exc:  # a missing or broken model must not stop the digests
        log.warning("digest overviews fall back to quotes: the LLM could not be opened (%s)", exc)
        return NoneLLM()


def _index_synced(settings: Any) -> bool:
    if settings.index.backend != "edge":
        return True
    return any((settings.data_dir / "index-state").glob("*.json"))


def index_scorer(settings: Any, resources: Resources) -> SemanticScorer | None:
    """Dense similarity from the resources' index when it was synced and opens; else None (keywords only)."""
    _, cfg = delivery_settings(settings)
    if not cfg.use_index or not _index_synced(settings):
        return None
    try:
        handle = resources.index
    except Exception as exc:
        log.warning("digest relevance uses keywords only: the index could not be opened (%s)", exc)
        return None
    return IndexScorer(handle.searcher())


def _config(cfg: DigestSettings) -> DigestConfig:
    return DigestConfig(max_items=cfg.max_items, max_items_per_topic=cfg.max_items_per_topic,
                        min_relevance=cfg.min_relevance, overview=cfg.overview, overview_items=cfg.overview_items,
                        overview_max_tokens=cfg.overview_max_tokens)


def build(settings: Any, catalog: Catalog, sub: Subscriber, period: Period, now: dt.datetime,
          resources: _RunResources) -> tuple[dict[str, Any], bytes]:
    """The digest document and message for one subscriber and period (nothing stored)."""
    smtp_cfg, cfg = delivery_settings(settings)
    previous = sendlog.previous_digest(catalog, sub.id, period.key)
    window = window_after(catalog, previous.to_time if previous else None, cfg.first_lookback_days)
    key = (window.from_time, window.to_time)
    curation = resources.resources.curation
    if key not in resources.pools:  # librarians' exclusions: excluded records never reach a digest
        resources.pools[key] = without_excluded(curation, candidates(catalog, window))
    pool = resources.pools[key]
    content = build_digest(catalog, sub.topics, window, period_end=period.end, min_level=sub.min_level,
                           alert_ids=sendlog.alert_candidates(catalog, sub.id),
                           scorer=resources.scorer() if pool else None,
                           llm=resources.llm() if pool and cfg.overview else None, config=_config(cfg), pool=pool,
                           pinned=curation.pins(), models=resources.resources.findings_models if pool else None)
    domain = cfg.message_id_domain or sender_domain(smtp_cfg)
    mailto = cfg.unsubscribe_mailto or smtp_cfg.sender
    sign = links.signer(cfg.secret.get_secret_value() if cfg.secret else None)
    base = cfg.web_base_url if sign is not None else None
    token = sign.unsubscribe_token(sub.id, sub.email) if sign is not None else sub.token
    template = cfg.unsubscribe_url or (base.rstrip("/") + "/unsubscribe/{token}" if base else None)
    unsubscribe = render.list_unsubscribe(token, url_template=template, mailto=mailto)
    view_url = links.digest_url(base, sub.id, period.key, sign.digest_signature(sub.id, period.key, sub.email)) \
        if base and sign is not None else None
    doc = {
        **content,
        "subscriber": {"email": sub.email, "name": sub.name},
        "period": {"key": period.key, "label": period.label, "frequency": period.frequency,
                   "start": period.start.isoformat(), "end": period.end.isoformat()},
        "message_id": render.message_id(sub.email, period.key, domain),
        "built_at": now.astimezone(dt.UTC).isoformat(),
        "topics_followed": [tp.name for tp in sub.topics],
        "min_level": sub.min_level,
        "unsubscribe": {"url": unsubscribe["url"], "mailto_url": unsubscribe["mailto_url"]},
        "web": {"url": view_url},
    }
    doc["subject"] = render.subject(doc)
    message = render.build_message(doc, sender=smtp_cfg.sender, fmt=sub.format, built_at=now,
                                   unsubscribe=unsubscribe["header"], one_click=unsubscribe["one_click"],
                                   list_id=cfg.list_id)
    counts = content["counts"]
    log.info("digest built for %s, %s: %d items, %d alerts, %d more; overview sentences %d, replaced %d, "
             "dropped %d", sub.email, period.key, counts["shown"], counts["alerts"], counts["more"],
             counts["overview_sentences"], counts["replaced"], counts["dropped"])
    return doc, message.as_bytes()


def write_files(out_dir: Path, sub: Subscriber, period: str, doc: dict[str, Any], eml: bytes) -> dict[str, str]:
    """`<email>-<period>.eml` plus the same digest as .json, .md and .html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = f"{re.sub(r'[^A-Za-z0-9._@+-]', '_', sub.email)}-{period}"
    files = {ext: out_dir / f"{base}.{ext}" for ext in ("eml", "json", "md", "html")}
    files["eml"].write_bytes(eml)
    files["json"].write_text(render.render_json(doc), encoding="utf-8")
    files["md"].write_text(render.render_markdown(doc), encoding="utf-8")
    files["html"].write_text(render.render_html(doc), encoding="utf-8")
    return {k: str(v) for k, v in files.items()}


def _result(sub: Subscriber, stored: sendlog.StoredDigest | None, period: str, status: str, **kw: Any) -> Result:
    if stored is None:
        return Result(sub.email, period, status, **kw)
    counts = stored.counts
    return Result(sub.email, period, status, message_id=stored.message_id, items=len(stored.item_ids),
                  alerts=len(stored.alert_ids), replaced=counts.get("replaced", 0), dropped=counts.get("dropped", 0),
                  cited=list(stored.document.get("cited", [])), **kw)


def send_stored(smtp_cfg: SmtpSettings, cfg: DigestSettings, catalog: Catalog, sub: Subscriber,
                stored: sendlog.StoredDigest, now: dt.datetime, built: bool = False) -> Result:
    """Send a stored digest unless it was sent (or is empty or given up); log the outcome."""
    row = sendlog.log_row(catalog, sub.id, stored.period) or {"status": sendlog.PENDING, "attempts": 0}
    if row["status"] == sendlog.SENT:
        return _result(sub, stored, stored.period, "already_sent", attempts=row["attempts"], built=built)
    if row["status"] == sendlog.EMPTY:
        return _result(sub, stored, stored.period, "empty", built=built)
    if row["attempts"] >= cfg.max_attempts:
        return _result(sub, stored, stored.period, "gave_up", attempts=row["attempts"], error=row.get("last_error"),
                       built=built)
    attempt = sendlog.begin_attempt(catalog, sub.id, stored.period, now)
    try:
        send(smtp_cfg, stored.eml, sub.email)
    except DeliveryError as exc:
        sendlog.mark_failed(catalog, sub.id, stored.period, str(exc))
        log.warning("digest %s for %s not delivered (attempt %d; retried next run): %s", stored.period, sub.email,
                    attempt, exc)
        return _result(sub, stored, stored.period, "failed", attempts=attempt, error=str(exc), built=built)
    versions = {item["record_id"]: item.get("version") for tp in stored.document.get("topics", [])
                for item in tp.get("items", [])}
    sendlog.mark_sent(catalog, stored, dt.datetime.now(dt.UTC), versions)
    log.info("digest %s sent to %s (attempt %d, %s)", stored.period, sub.email, attempt, stored.message_id)
    return _result(sub, stored, stored.period, "sent", attempts=attempt, built=built)


def deliver(settings: Any, catalog: Catalog, sub: Subscriber, period: Period, now: dt.datetime,
            resources: _RunResources, *, dry_run: bool = False, out_dir: Path | None = None) -> Result:
    """Build (once) and send the digest of one period; with `dry_run`, only write files."""
    smtp_cfg, cfg = delivery_settings(settings)
    stored = sendlog.get_digest(catalog, sub.id, period.key)
    if stored is None:
        doc, eml = build(settings, catalog, sub, period, now, resources)
        if dry_run:
            files = write_files(out_dir, sub, period.key, doc, eml) if out_dir else {}
            return Result(sub.email, period.key, "dry_run", message_id=doc["message_id"], items=len(doc["item_ids"]),
                          alerts=len(doc["alert_ids"]), built=True, replaced=doc["counts"]["replaced"],
                          dropped=doc["counts"]["dropped"], cited=doc["cited"], files=files)
        window = doc["window"]
        empty = not doc["item_ids"] and not doc["alert_ids"] and not cfg.send_empty
        sendlog.store_digest(
            catalog, subscriber_id=sub.id, period=period.key, built_at=now, message_id=doc["message_id"],
            from_seq=_seq_before(catalog, sub, period), to_seq=window["to_seq"],
            from_time=_parse(window["from_time"]), to_time=_parse(window["to_time"]), item_ids=doc["item_ids"],
            alert_ids=doc["alert_ids"], counts=doc["counts"], document=doc, eml=eml, empty=empty)
        stored = sendlog.get_digest(catalog, sub.id, period.key)  # ours, or one a concurrent run stored first
        assert stored is not None
        built = True
    else:
        built = False
    files = write_files(out_dir, sub, period.key, stored.document, stored.eml) if out_dir else {}
    if dry_run:
        return _result(sub, stored, period.key, "dry_run", files=files)
    result = send_stored(smtp_cfg, cfg, catalog, sub, stored, now, built=built)
    result.files = files
    return result


def _seq_before(catalog: Catalog, sub: Subscriber, period: Period) -> int:
    previous = sendlog.previous_digest(catalog, sub.id, period.key)
    return previous.to_seq if previous else 0


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def run_digests(settings: Any, catalog: Catalog, now: dt.datetime | None = None, *,
                subscribers: list[Subscriber] | None = None, day: dt.date | None = None, force: bool = False,
                dry_run: bool = False, out_dir: Path | None = None, llm: Any = _DEFAULT,
                scorer: Any = _DEFAULT, resources: Resources | None = None) -> dict[str, Any]:
    """Build and send what is due. The scheduler calls it with (settings, catalog[, now]).

    `day`: the period containing this local day instead of today's (implies `force`); `force`: build
    even before the local send hour; `dry_run`: write files to `out_dir`, send and record nothing.
    `llm` / `scorer` override the configured model and index (tests; None turns them off).
    `resources`: the caller's (`oncolit demo` shares its model and index); by default the run opens its
    own over `catalog`, and builds the LLM and index only if a digest is built.
    """
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    smtp_cfg, cfg = delivery_settings(settings)
    if cfg.web_base_url and cfg.secret is None:
        log.warning("digest.web_base_url is set but digest.secret is not: digests carry no web-view or one-click "
                    "unsubscribe links until ONCOLIT_DIGEST__SECRET (or [digest] secret) is set")
    lock = None
    if not dry_run:
        lock = job_lock(settings.resolved_catalog_url, settings.ensure_data_dir(), "digest")
        try:
            lock.acquire()
        except LockBusy as exc:
            log.warning("digests skipped: %s", exc)
            return {"status": "skipped", "reason": str(exc), "results": []}
    results: list[Result] = []
    try:
        with ExitStack() as stack:
            if resources is None:
                resources = stack.enter_context(open_resources(settings, catalog=catalog))
            shared = _RunResources(settings, resources, llm, scorer)
            subs = subscribers if subscribers is not None else list_subscribers(catalog, active_only=True)
            for sub in subs:
                try:
                    results += _one(settings, catalog, sub, now, shared, day=day, force=force or day is not None,
                                    dry_run=dry_run, out_dir=out_dir)
                except Exception as exc:  # one subscriber's failure must not stop the others
                    log.exception("digest for %s failed", sub.email)
                    results.append(Result(sub.email, "", "error", error=f"{type(exc).__name__}: {exc}"[:500]))
    finally:
        if lock is not None:
            lock.release()
    tally: dict[str, int] = {}
    for r in results:
        tally[r.status] = tally.get(r.status, 0) + 1
    status = "failed" if tally.get("failed") or tally.get("error") else "ok"
    return {"status": status, "subscribers": len({r.subscriber for r in results}), **tally,
            "built": sum(r.built for r in results), "replaced": sum(r.replaced for r in results if r.built),
            "dropped": sum(r.dropped for r in results if r.built), "results": [r.as_dict() for r in results]}


def _one(settings: Any, catalog: Catalog, sub: Subscriber, now: dt.datetime, resources: _RunResources, *,
         day: dt.date | None, force: bool, dry_run: bool, out_dir: Path | None) -> list[Result]:
    smtp_cfg, cfg = delivery_settings(settings)
    out: list[Result] = []
    period = period_for(sub, day, cfg) if day is not None else current_period(sub, now, cfg)
    if not dry_run:
        for key in sendlog.unsent(catalog, sub.id, cfg.max_attempts):
            if key == period.key:
                continue  # handled below, once
            stored = sendlog.get_digest(catalog, sub.id, key)
            if stored is not None:
                out.append(send_stored(smtp_cfg, cfg, catalog, sub, stored, now))
    if not force and now < period.send_at and sendlog.get_digest(catalog, sub.id, period.key) is None:
        out.append(Result(sub.email, period.key, "not_due"))
        return out
    out.append(deliver(settings, catalog, sub, period, now, resources, dry_run=dry_run, out_dir=out_dir))
    return out


def run_digests_job(settings: Any = None) -> dict[str, Any]:
    """Entry point for a scheduler job of its own (e.g. hourly), by import path
    "oncolit.delivery.run:run_digests_job": digests then go out at each subscriber's local hour even
    when no ingest has just finished."""
    from oncolit.settings import Settings

    settings = settings or Settings()
    with Catalog(settings.resolved_catalog_url) as catalog:
        return run_digests(settings, catalog)
