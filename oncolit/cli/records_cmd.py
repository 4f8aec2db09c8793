"""`oncolit records …`: look inside the catalog."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer

from oncolit.cli.common import EMPTY_CATALOG, JsonOpt, echo_raw, emit, open_catalog
from oncolit.ids import normalise_id

app = typer.Typer(help="Inspect catalog records.", no_args_is_help=True)


@app.command("show")
def show(record_id: str, raw: bool = typer.Option(False, help="Print the stored source payload instead."),
         as_json: bool = JsonOpt) -> None:
    """Show one record: every parsed field, version, state, linked trials/publications.

    Examples:
      oncolit records show pubmed:22663011 --json
      oncolit records show NCT02576665
    """
    rid = normalise_id(record_id)
    with open_catalog() as catalog:
        data = catalog.get(rid)
        if raw:
            echo_raw(catalog.raw(rid, data["version"]).decode("utf-8", errors="replace"))
            return
    emit(data, as_json, _text(data))


def _text(d: dict[str, Any]) -> str:
    flags = [f for f, on in (("DELETED", d["deleted"]), ("RETRACTED", d["retracted"])) if on]
    lines = [f"{d['id']}  v{d['version']}  {' '.join(flags)}".rstrip(), d["title"] or "(no title)"]
    if d["published"]:
        lines.append(f"published {d['published']}")
    for label, key in (("trials", "trials"), ("publications", "publications"),
                       ("retraction notices", "retraction_notices")):
        if d[key]:
            lines.append(f"{label}: {', '.join(d[key])}")
    for v in d["versions"]:
        changed = ", ".join(c["field"] for c in v["changes"]) or "-"
        lines.append(f"  version {v['version']} first seen {v['first_seen']:%Y-%m-%d %H:%M} changes: {changed}")
    return "\n".join(lines)


@app.command("stats")
def stats(as_json: bool = JsonOpt) -> None:
    """Counts by source and state (active, deleted, retracted) and versions."""
    with open_catalog() as catalog:
        data = catalog.stats()
    rows = [f"{src:<8} records {s['records']:>7}  active {s['active']:>7}  deleted {s['deleted']:>5}  "
            f"retracted {s['retracted']:>4}  versions {s['versions']:>7}" for src, s in data["by_source"].items()]
    if data["quarantined"]["total"]:
        rows.append(f"quarantined {data['quarantined']['total']} records that could not be stored "
                    "(kept raw, retried by each ingest run): see `oncolit records quarantine`")
    if not data["total"]["records"]:
        rows.append(EMPTY_CATALOG)
    emit(data, as_json, "\n".join(rows))


@app.command("quarantine")
def quarantine(source: str = typer.Option(None, help="pubmed or ctgov (default: both)."),
               raw: str = typer.Option(None, help="Print the kept payload of this record instead."),
               as_json: bool = JsonOpt) -> None:
    """Records that could not be stored (e.g. a year 0 publication date), each with its error.

    They are kept raw and offered to the catalog again at the start of every ingest run of their
    source; a corrected revision from the source, or a parser fix, takes them out.

    Examples:
      oncolit records quarantine --json
      oncolit records quarantine --raw pubmed:90000001
    """
    with open_catalog() as catalog:
        if raw:
            payload, _fmt = catalog.quarantined_raw(normalise_id(raw))
            echo_raw(payload.decode("utf-8", errors="replace"))
            return
        entries = catalog.quarantine(source)
    rows = [asdict(e) for e in entries]
    text = "\n".join(f"{e.record_id}  attempts {e.attempts}  since {e.first_seen:%Y-%m-%d}  {e.error}"
                     for e in entries) or "the quarantine is empty"
    emit(rows, as_json, text)
