"""`oncolit subscribers …` (who gets digests, about what) and `oncolit digest` (build and send them).

Registered in `main.py` as `app.add_typer(digest_cmd.subscribers_app, name="subscribers")` and
`app.command("digest")(digest_cmd.digest)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ingest.errors import ConfigError
from oncolit.cli.common import JsonOpt, cli_resources, emit, get_settings, open_catalog, parse_day
from oncolit.delivery import sendlog
from oncolit.delivery.run import run_digests
from oncolit.delivery.subscribers import (
    FORMATS,
    FREQUENCIES,
    add_subscriber,
    get_subscriber,
    list_subscribers,
    remove_subscriber,
)
from synthesis.digest import Topic

subscribers_app = typer.Typer(help="Digest subscribers: who gets which topics, how often, in which time zone.",
                              no_args_is_help=True)


def _topics(topic: list[str], search: list[str], site: list[str], gene: list[str],
            topics_json: str | None) -> list[Topic]:
    out: list[Topic] = []
    for text in topic:
        name, sep, query = text.partition(":")
        name, query = (name.strip(), query.strip()) if sep and query.strip() else (text.strip()[:100], text.strip())
        out.append(Topic(name=name, query=query))
    out += [Topic(name=name, search=name) for name in search]
    out += [Topic(name=s, query=s, sites=[s]) for s in site]
    out += [Topic(name=g, query=g, genes=[g]) for g in gene]
    if topics_json:
        raw = Path(topics_json).read_text(encoding="utf-8") if Path(topics_json).is_file() else topics_json
        try:
            data = json.loads(raw)
            out += [Topic.model_validate(item) for item in (data if isinstance(data, list) else [data])]
        except ValueError as exc:
            raise ConfigError(f"--topics-json: {exc}") from None
    return out


@subscribers_app.command("add")
def add(
    email: str = typer.Argument(..., help="E-mail address (unique)."),
    name: str = typer.Option("", "--name", help="How the digest greets them."),
    topic: list[str] = typer.Option([], "--topic", help="Free-text interest, optionally 'Name: words'. Repeatable."),
    search: list[str] = typer.Option([], "--search", help="A saved search: its records form a topic. Repeatable."),
    site: list[str] = typer.Option([], "--site", help="Cancer site as a topic (records must name it). Repeatable."),
    gene: list[str] = typer.Option([], "--gene", help="Gene or biomarker as a topic (records must name it)."),
    topics_json: str = typer.Option(None, "--topics-json", help="Topics as JSON (or a file): "
                                                                '[{"name", "query", "search", "sites", "genes"}].'),
    min_level: str = typer.Option(None, "--min-level", help="Weakest evidence level to include: 1a..5, or 1..5 "
                                                            "(2 = 2a and 2b). Default: all."),
    frequency: str = typer.Option("daily", "--frequency", help=" | ".join(FREQUENCIES)),
    timezone: str = typer.Option("UTC", "--timezone", help="IANA time zone, e.g. Europe/Paris."),
    send_hour: int = typer.Option(None, "--send-hour", min=0, max=23, help="Local hour (default: settings)."),
    format: str = typer.Option("html", "--format", help=" | ".join(FORMATS)),
    as_json: bool = JsonOpt,
) -> None:
    """Subscribe an address to digests.

    Examples:
      oncolit subscribers add ana@example.org --name "Dr Ana" --topic "Melanoma: BRAF MEK inhibitors" --min-level 2
      oncolit subscribers add team@example.org --search melanoma-rct --gene EGFR --frequency weekly \
        --timezone Europe/Paris
    """
    topics = _topics(topic, search, site, gene, topics_json)
    with open_catalog() as catalog:
        sub = add_subscriber(catalog, email, topics, name=name, min_level=min_level, frequency=frequency,
                             timezone=timezone, send_hour=send_hour, format=format)
    emit(sub.public(), as_json, f"subscribed {sub.email} (id {sub.id}): {', '.join(t.name for t in sub.topics)}, "
                                f"{sub.frequency}, {sub.timezone}")


@subscribers_app.command("list")
def list_(as_json: bool = JsonOpt) -> None:
    """List subscribers with their topics and last digest."""
    with open_catalog() as catalog:
        rows = []
        for sub in list_subscribers(catalog):
            log = sendlog.history(catalog, sub.id)
            rows.append({**sub.public(), "last_digest": log[0] if log else None})
    text = "\n".join(
        f"{r['id']:>3} {r['email']:<32} {r['frequency']:<6} {r['timezone']:<18} level<={r['min_level'] or 'all':<4} "
        f"{', '.join(t['name'] for t in r['topics'])}"
        + (f"  last: {r['last_digest']['period']} {r['last_digest']['status']}" if r["last_digest"] else "")
        for r in rows) or "no subscribers"
    emit(rows, as_json, text)


@subscribers_app.command("remove")
def remove(subscriber: str = typer.Argument(..., help="Id, e-mail address or unsubscribe token."),
           as_json: bool = JsonOpt) -> None:
    """Unsubscribe: removes the subscriber with their digests and send log."""
    with open_catalog() as catalog:
        sub = remove_subscriber(catalog, subscriber)
    emit({"removed": sub.email, "id": sub.id}, as_json, f"removed {sub.email}")


def digest(
    subscriber: str = typer.Option(None, "--subscriber", help="Id or e-mail address (default: every active "
                                                               "subscriber)."),
    date: str = typer.Option(None, "--date", help="A day in the period to build (YYYY-MM-DD, the subscriber's "
                                                  "local calendar; default: today there)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Build and write files only: nothing is sent or logged."),
    out: Path = typer.Option(None, "--out", help="Write <email>-<period>.eml (+ .json, .md, .html) here."),
    as_json: bool = JsonOpt,
) -> None:
    """Build and send digests now (the scheduler does this at each subscriber's local send hour).

    A period's digest is built once: running again resends it only if it was not accepted, and sends
    nothing once it was. Overviews are checked sentence by sentence; the counts are in --json output.

    Examples:
      oncolit digest --subscriber ana@example.org --date 2026-11-27 --dry-run --out digests/ --json
      oncolit digest
    """
    if dry_run and out is None:
        raise typer.BadParameter("--dry-run needs --out DIR to write the .eml files to")
    day = parse_day(date, "--date")
    settings = get_settings()
    with cli_resources() as res:
        subs = [get_subscriber(res.catalog, subscriber)] if subscriber else None
        report = run_digests(settings, res.catalog, subscribers=subs, day=day, force=True, dry_run=dry_run,
                             out_dir=out, resources=res)
    written = [{"subscriber": r["subscriber"], "period": r["period"], "eml": r["files"].get("eml"),
                "files": r["files"], "status": r["status"], "message_id": r["message_id"], "items": r["items"],
                "alerts": r["alerts"], "replaced": r["replaced"], "dropped": r["dropped"], "cited": r["cited"],
                **({"error": r["error"]} if r["error"] else {})} for r in report["results"]]
    lines = [f"{w['subscriber']} {w['period']}: {w['status']}, {w['items']} items, {w['alerts']} alerts"
             + (f" -> {w['eml']}" if w["eml"] else "") + (f" ({w['error']})" if w.get("error") else "")
             for w in written]
    emit({"status": report["status"], "dry_run": dry_run, "written": written}, as_json,
         "\n".join(lines) or "no active subscribers")
    if report["status"] not in ("ok", "skipped"):
        raise typer.Exit(1)
