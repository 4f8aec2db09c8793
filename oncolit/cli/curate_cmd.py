"""`oncolit curate …`: librarian curation from the command line, acting as a named local user.

Every change is made as `--as NAME` (default: $ONCOLIT_USER, else the OS user), who must exist with the
right role (`oncolit curate users add NAME --role librarian`; the very first user must be an admin) and
is the "who" of the audit log.
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ingest.curation import FIELDS, CurationError
from oncolit.cli.common import JsonOpt, cli_resources, emit, get_settings, parse_day

if TYPE_CHECKING:  # the service (and the catalog under it) loads when a command runs, not for --help
    from ingest.curation import Curation

app = typer.Typer(help="Curation: sources, rules, decisions, the review queue, audit, users and keys.",
                  no_args_is_help=True)
sources_app = typer.Typer(help="Saved searches (what OncoLit watches), with audit and dry-run previews.",
                          no_args_is_help=True)
rules_app = typer.Typer(help="Include/exclude rules (what OncoLit may cite).", no_args_is_help=True)
users_app = typer.Typer(help="People and roles (admins).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the HTTP API and the librarian pages.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(rules_app, name="rules")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

AsOpt = typer.Option(None, "--as", envvar="ONCOLIT_USER", show_envvar=True,
                     help="Act as this user (default: $ONCOLIT_USER, else the OS user).")


def actor(name: str | None) -> str:
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise CurationError("cannot tell who you are: pass --as NAME or set ONCOLIT_USER") from None


@contextmanager
def curation() -> Iterator[Curation]:
    with cli_resources() as res:
        yield res.curation


def _params(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--param takes KEY=VALUE, not {value!r}")
        out[key] = val
    return out


# ================================================================================ review
@app.command("queue")
def queue(sort: str = typer.Option("newest", help="newest | relevance | evidence"),
          limit: int = typer.Option(20, "--limit", "-n", min=1, max=500), offset: int = typer.Option(0, min=0),
          kind: str = typer.Option(None, help="article | trial"), as_json: bool = JsonOpt) -> None:
    """Records awaiting review.

    Examples:
      oncolit curate queue --sort relevance
      oncolit curate queue --sort evidence --kind article --limit 50
    """
    with curation() as cur:
        page = cur.queue(sort=sort, limit=limit, offset=offset, kind=kind)
    lines = [f"{page.total} awaiting review (sorted by {page.sort})"]
    for i in page.items:
        rel = f"{i.relevance:.0%}" if i.relevance is not None else "-"
        lines.append(f"{i.record_id:<22} {i.evidence_level or '-':<3} {rel:>5}  {i.title[:90]}")
    emit(page.as_dict(), as_json, "\n".join(lines))


@app.command("show")
def show(record_id: str, as_json: bool = JsonOpt) -> None:
    """A record with its decision, the rules' verdict (and why), pins, tags, notes, links and history."""
    with curation() as cur:
        r = cur.record(record_id)
    v = r["verdict"]
    text = [f"{r['id']}  {r['title']}",
            f"status: {'EXCLUDED — ' + v['reason'] if v['excluded'] else 'visible'}"
            + (f" (approval overrides rule(s) {v['overridden_rules']})" if v["overridden_rules"] else ""),
            f"decision: {r['decision']['status'] + ' by ' + r['decision']['decided_by'] if r['decision'] else 'none'}",
            f"pins: {', '.join(r['pins']) or '-'}   tags: {', '.join(r['tags']) or '-'}",
            f"linked: {', '.join(link['record_id'] for link in r['linked']) or '-'}"]
    text += [f"note ({n['author']}): {n['text']}" for n in r["notes"]]
    emit({k: r[k] for k in ("id", "title", "kind", "state", "retracted", "decision", "verdict", "pins", "tags",
                             "notes", "linked", "audit")}, as_json, "\n".join(text))


@app.command("approve")
def approve(record_ids: list[str] = typer.Argument(..., help="PMIDs, NCT ids, pubmed:… or ctgov:…"),
            as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Approve records (they stay visible whatever the rules say)."""
    with curation() as cur:
        changed = cur.approve(actor(as_), record_ids)
    emit({"approved": changed}, as_json, f"approved {len(changed)} record(s)")


@app.command("exclude")
def exclude(record_ids: list[str] = typer.Argument(...),
            reason: str = typer.Option(..., help="Why (required; librarians see it)."),
            as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Exclude records: kept in the catalog, never shown in search, answers or digests.

    Example:
      oncolit curate exclude 12345678 NCT01234567 --reason "predatory journal"
    """
    with curation() as cur:
        changed = cur.exclude(actor(as_), record_ids, reason)
    emit({"excluded": changed}, as_json, f"excluded {len(changed)} record(s)")


@app.command("reset")
def reset(record_ids: list[str] = typer.Argument(...), as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Undo decisions: the records go back to the queue (and to the rules' verdict)."""
    with curation() as cur:
        changed = cur.reset(actor(as_), record_ids)
    emit({"reset": changed}, as_json, f"reset {len(changed)} record(s)")


@app.command("pin")
def pin(record_id: str, topic: str = typer.Option(..., help="Digest topic name."), as_: str = AsOpt,
        as_json: bool = JsonOpt) -> None:
    """Pin a record to a topic: always featured in that topic's digests."""
    with curation() as cur:
        cur.pin(actor(as_), record_id, topic)
    emit({"pinned": record_id, "topic": topic}, as_json, f"pinned {record_id} to {topic!r}")


@app.command("unpin")
def unpin(record_id: str, topic: str = typer.Option(...), as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        cur.unpin(actor(as_), record_id, topic)
    emit({"unpinned": record_id, "topic": topic}, as_json, f"unpinned {record_id} from {topic!r}")


@app.command("tag")
def tag(record_ids: list[str] = typer.Argument(...), tag: str = typer.Option(..., "--tag"), as_: str = AsOpt,
        as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        done = cur.tag(actor(as_), record_ids, tag)
    emit({"tagged": done, "tag": tag}, as_json, f"tagged {len(done)} record(s) {tag!r}")


@app.command("untag")
def untag(record_id: str, tag: str = typer.Option(..., "--tag"), as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        cur.untag(actor(as_), record_id, tag)
    emit({"untagged": record_id, "tag": tag}, as_json, f"removed tag {tag!r} from {record_id}")


@app.command("note")
def note(record_id: str, text: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        note_id = cur.note(actor(as_), record_id, text)
    emit({"record_id": record_id, "note_id": note_id}, as_json, f"note {note_id} added to {record_id}")


@app.command("exclusions")
def exclusions(as_json: bool = JsonOpt) -> None:
    """Every excluded record with its reason."""
    with curation() as cur:
        found = cur.exclusions()
    emit(found, as_json, "\n".join(f"{rid:<22} {why}" for rid, why in sorted(found.items())) or "nothing excluded")


# ================================================================================ import / export
@app.command("import")
def import_(path: str = typer.Argument(..., help="File of PMIDs / NCT ids (any separators), or - for stdin."),
            approve_: bool = typer.Option(False, "--approve", help="Approve them."),
            exclude_: bool = typer.Option(False, "--exclude", help="Exclude them (needs --reason)."),
            reason: str = typer.Option(None, help="Why (required with --exclude)."),
            as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Approve or exclude a list of ids; ids not yet ingested get the decision when they arrive.

    Example:
      oncolit curate import retracted.txt --exclude --reason "retracted per Retraction Watch"
    """
    if approve_ == exclude_:
        raise typer.BadParameter("give exactly one of --approve or --exclude")
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    with curation() as cur:
        report = cur.import_ids(actor(as_), text, "approve" if approve_ else "exclude", reason)
    lines = [f"{report.action}d {len(report.applied)} id(s)"]
    if report.not_in_catalog:
        lines.append(f"not in the catalog yet: {', '.join(report.not_in_catalog)}")
    if report.invalid:
        lines.append(f"skipped (not ids): {', '.join(report.invalid)}")
    emit(report.as_dict(), as_json, "\n".join(lines))


@app.command("export")
def export(fmt: str = typer.Option("ris", "--format", "-f", help="ris | nbib | csv | bibtex | csljson"),
           out: Path = typer.Option(None, "--out", help="File to write (default: stdout)."),
           status: str = typer.Option("approved", help="approved | excluded | any"),
           tag: str = typer.Option(None, help="Only records with this tag."),
           topic: str = typer.Option(None, help="Only records pinned to this topic.")) -> None:
    """Export a curated set for Zotero/EndNote (RIS, PubMed .nbib), LaTeX (BibTeX), Zotero/Pandoc (CSL-JSON)
    or spreadsheets (CSV, with a byte order mark so Excel reads UTF-8).

    Librarian tags and notes go out too: RIS KW/N1, MEDLINE OT/GN, BibTeX keywords/note, CSL keyword/note,
    the CSV tags/notes columns.

    Examples:
      oncolit curate export --format ris --out melanoma.ris --tag melanoma
      oncolit curate export --format nbib --out approved.nbib
      oncolit curate export --format bibtex --out approved.bib
      oncolit curate export --format csljson --out approved.json
    """
    from ingest.curation.exports import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format is one of {', '.join(FORMATS)}, not {fmt!r}")
    with curation() as cur:
        ids = cur.curated(status=status, tag=tag, topic=topic)
        text, skipped = cur.export(fmt, ids)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8", newline="")
    msg = f"exported {len(ids) - len(skipped)} record(s) as {fmt}" + (f" to {out}" if out else "")
    if skipped:
        msg += f"; {len(skipped)} trial(s) left out (MEDLINE holds PubMed records only; use RIS or CSV)"
    sys.stderr.write(msg + "\n")


@app.command("audit")
def audit(entity: str = typer.Option(None, help="search | rule | record | user | key"),
          entity_id: str = typer.Option(None, "--id", help="e.g. pubmed:12345678, a rule number, a search name"),
          who: str = typer.Option(None, "--actor", help="Only changes by this user."),
          limit: int = typer.Option(50, "--limit", "-n", min=1),
          export_to: Path = typer.Option(None, "--export", help="Write the whole log to this file."),
          fmt: str = typer.Option("jsonl", "--format", help="Export format: jsonl | csv."),
          as_json: bool = JsonOpt) -> None:
    """The audit log (newest first), or `--export FILE` for all of it, oldest first."""
    with curation() as cur:
        if export_to is not None:
            export_to.write_text(cur.export_audit(fmt), encoding="utf-8", newline="")
            emit({"exported": str(export_to)}, as_json, f"wrote the audit log to {export_to}")
            return
        rows = cur.audit_log(entity=entity, entity_id=entity_id, actor=who, limit=limit)
    text = "\n".join(f"#{r['id']:<5} {r['at']:%Y-%m-%d %H:%M:%S}  {r['actor']:<12} {r['action']:<16} "
                     f"{r['entity']} {r['entity_id']}  {r['before']} -> {r['after']}" for r in rows)
    emit(rows, as_json, text or "no entries")


# ================================================================================ sources
@sources_app.command("list")
def sources_list(as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        rows = cur.searches()
    text = "\n".join(f"{r['name']:<24} {r['source']:<7} {'active' if r['active'] else 'paused':<7} "
                     f"owner={r['owner'] or '-'} watermark={r['watermark'] or '-'}  {r['query']}" for r in rows)
    emit(rows, as_json, text or "no saved searches")


@sources_app.command("add")
def sources_add(name: str, source: str = typer.Option("pubmed", help="pubmed | ctgov"),
                query: str = typer.Option(..., help="PubMed query, or CT.gov condition/term text."),
                param: list[str] = typer.Option([], help="Source parameter KEY=VALUE (CT.gov: cond, term, phase…)."),
                schedule: str = typer.Option(None, help="Cron expression (default: settings)."),
                owner: str = typer.Option(None, help="Who maintains it (default: you)."),
                paused: bool = typer.Option(False, help="Add it paused."),
                backfill: str = typer.Option(None, "--backfill", help="Ingest from this day (YYYY-MM-DD)."),
                as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Add a saved search.

    Examples:
      oncolit curate sources add melanoma-rct --query "melanoma[mh] AND randomized controlled trial[pt]"
      oncolit curate sources add nsclc --source ctgov --query "non-small cell lung cancer" --param phase=PHASE3
    """
    with curation() as cur:
        row = cur.add_search(actor(as_), name, source, query, _params(param), schedule=schedule, owner=owner,
                             active=not paused, backfill_from=parse_day(backfill, "--backfill"))
    emit(row, as_json, f"added {source} search {name!r}")


@sources_app.command("update")
def sources_update(name: str, query: str = typer.Option(None, help="New query: starts a new watermark at today."),
                   param: list[str] = typer.Option(None, help="Replace the parameters (KEY=VALUE, repeatable)."),
                   schedule: str = typer.Option(None), owner: str = typer.Option(None),
                   backfill: str = typer.Option(None, "--backfill", help="Re-read history from this day."),
                   as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Change a saved search. A new query never re-ingests history unless you say `--backfill FROM`.

    Example:
      oncolit curate sources update melanoma-rct --query "melanoma[mh] AND phase III[pt]" --backfill 2026-01-01
    """
    kwargs: dict[str, Any] = {"query": query, "params": _params(param) if param else None,
                              "backfill_from": parse_day(backfill, "--backfill")}
    if schedule is not None:
        kwargs["schedule"] = schedule
    if owner is not None:
        kwargs["owner"] = owner
    with curation() as cur:
        row = cur.update_search(actor(as_), name, **kwargs)
    emit(row, as_json, f"updated {name!r}: watermark={row['watermark'] or '-'}")


@sources_app.command("pause")
def sources_pause(name: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        row = cur.update_search(actor(as_), name, active=False)
    emit(row, as_json, f"paused {name!r}")


@sources_app.command("resume")
def sources_resume(name: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        row = cur.update_search(actor(as_), name, active=True)
    emit(row, as_json, f"resumed {name!r}")


@sources_app.command("remove")
def sources_remove(name: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Stop watching (its records stay in the catalog)."""
    with curation() as cur:
        cur.remove_search(actor(as_), name)
    emit({"removed": name}, as_json, f"removed {name!r}")


@sources_app.command("preview")
def sources_preview(name: str = typer.Argument(None, help="A saved search (or give --source and --query)."),
                    source: str = typer.Option(None, help="pubmed | ctgov, for a draft query."),
                    query: str = typer.Option(None, help="A draft query to count without saving it."),
                    param: list[str] = typer.Option([], help="Draft query parameter KEY=VALUE."),
                    since: str = typer.Option(None), until: str = typer.Option(None),
                    as_json: bool = JsonOpt) -> None:
    """Dry run: how many records a query returns for a window, through the source's own client.

    Examples:
      oncolit curate sources preview melanoma-rct
      oncolit curate sources preview --source pubmed --query "uveal melanoma" --since 2026-11-01
    """
    from oncolit.wiring import open_source
    settings = get_settings()
    start, end = parse_day(since, "--since"), parse_day(until, "--until")
    with curation() as cur:
        if name:
            search = cur.catalog.get_search(name)
            with open_source(search["source"], settings) as src:
                result = cur.preview_search(src, name, since=start, until=end,
                                            initial_lookback_days=settings.initial_lookback_days)
        else:
            if not (source and query):
                raise typer.BadParameter("give a saved search name, or --source and --query")
            end = end or dt.date.today()
            start = start or end - dt.timedelta(days=settings.initial_lookback_days)
            with open_source(source, settings) as src:
                from ingest.source import Query, Window

                count = cur.preview(src, Query(query, _params(param)), Window(start, end))
            result = {"source": source, "window": [start.isoformat(), end.isoformat()], "count": count}
    emit(result, as_json, f"{result['count']} record(s) for {result['window'][0]} .. {result['window'][1]}")


# ================================================================================ rules
@rules_app.command("list")
def rules_list(as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        rules = cur.rules()
    text = "\n".join(f"#{r.id:<4} {'active ' if r.active else 'retired'} {r.action:<7} {r.field:<16} "
                     f"{r.value!r:<30} {r.reason} ({r.author})" for r in rules)
    emit([vars(r) for r in rules], as_json, text or "no rules")


@rules_app.command("add")
def rules_add(action: str = typer.Argument(..., help="include | exclude"),
              field: str = typer.Argument(..., help=f"One of: {', '.join(FIELDS)}"),
              value: str = typer.Argument(...),
              reason: str = typer.Option(..., help="Why (required)."), as_: str = AsOpt,
              as_json: bool = JsonOpt) -> None:
    """Add a rule; it applies at once to the whole catalog and to everything ingested later.

    Examples:
      oncolit curate rules add exclude publication_type Editorial --reason "opinion, not evidence"
      oncolit curate rules add exclude journal 1234-5678 --reason "predatory publisher"
      oncolit curate rules add include language eng --reason "English-language review only"
    """
    with curation() as cur:
        rule = cur.add_rule(actor(as_), action, field, value, reason)
    emit(vars(rule), as_json, f"added rule #{rule.id}")


@rules_app.command("update")
def rules_update(rule_id: int, value: str = typer.Option(None), reason: str = typer.Option(None),
                 action: str = typer.Option(None), as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        rule = cur.update_rule(actor(as_), rule_id, value=value, reason=reason, action=action)
    emit(vars(rule), as_json, f"updated rule #{rule.id}")


@rules_app.command("retire")
def rules_retire(rule_id: int, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Stop applying a rule (it is kept, with its history)."""
    with curation() as cur:
        rule = cur.update_rule(actor(as_), rule_id, active=False)
    emit(vars(rule), as_json, f"retired rule #{rule.id}")


@rules_app.command("restore")
def rules_restore(rule_id: int, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        rule = cur.update_rule(actor(as_), rule_id, active=True)
    emit(vars(rule), as_json, f"restored rule #{rule.id}")


@rules_app.command("refresh")
def rules_refresh(as_json: bool = JsonOpt) -> None:
    """Re-evaluate the rules over the whole catalog (normally automatic)."""
    with curation() as cur:
        counts = cur.refresh_verdicts(only_stale=False)
    emit(counts, as_json, f"evaluated {counts['evaluated']} record(s); {counts['flipped']} changed")


# ================================================================================ users and keys
@users_app.command("list")
def users_list(as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        rows = cur.users()
    emit(rows, as_json, "\n".join(f"{u['name']:<20} {u['role']:<10} {'active' if u['active'] else 'disabled':<9} "
                                  f"keys={u['active_keys']}" for u in rows) or "no users")


@users_app.command("add")
def users_add(name: str, role: str = typer.Option("librarian", help="reader | librarian | admin"),
              as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    """Add a user (admins; the very first user must be an admin and can be added by anyone).

    Example:
      oncolit curate users add alice --role admin --as alice
    """
    with curation() as cur:
        row = cur.add_user(actor(as_), name, role)
    emit(row, as_json, f"added {role} {name!r}")


@users_app.command("role")
def users_role(name: str, role: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        row = cur.set_user(actor(as_), name, role=role)
    emit(row, as_json, f"{name!r} is now a {row['role']}")


@users_app.command("disable")
def users_disable(name: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        row = cur.set_user(actor(as_), name, active=False)
    emit(row, as_json, f"disabled {name!r} (their keys stop working)")


@users_app.command("enable")
def users_enable(name: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        row = cur.set_user(actor(as_), name, active=True)
    emit(row, as_json, f"enabled {name!r}")


@keys_app.command("create")
def keys_create(user: str = typer.Option(None, help="Whose key (default: you; others need an admin)."),
                label: str = typer.Option(None, help="What it is for."), as_: str = AsOpt,
                as_json: bool = JsonOpt) -> None:
    """Make an API key. It is printed once, on stdout; only a salted hash is kept."""
    me = actor(as_)
    with curation() as cur:
        key_id, token = cur.create_key(me, user or me, label)
    if as_json:
        emit({"key_id": key_id, "user": user or me, "key": token}, True)
    else:
        sys.stderr.write(f"key {key_id} for {user or me}; store it now, it cannot be shown again:\n")
        sys.stdout.write(token + "\n")


@keys_app.command("list")
def keys_list(user: str = typer.Option(None), as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        rows = cur.keys(user)
    emit(rows, as_json, "\n".join(f"{k['key_id']}  {k['user_name']:<16} {'revoked' if k['revoked_at'] else 'active':<8} "
                                  f"{k['label'] or ''}" for k in rows) or "no keys")


@keys_app.command("revoke")
def keys_revoke(key_id: str, as_: str = AsOpt, as_json: bool = JsonOpt) -> None:
    with curation() as cur:
        cur.revoke_key(actor(as_), key_id)
    emit({"revoked": key_id}, as_json, f"revoked key {key_id}")
