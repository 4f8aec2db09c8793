"""`oncolit records …`: look inside the catalog."""

from __future__ import annotations

from typing import Any

import typer

from oncolit.cli.common import JsonOpt, emit, open_catalog
from oncolit.ids import normalise_id

app = typer.Typer(help="Inspect catalog records.", no_args_is_help=True)


@app.command("show")
def show(record_id: str, raw: bool = typer.Option(False, help="Print the stored source payload instead."),
         as_json: bool = JsonOpt) -> None:
    """Show one record: every parsed field, version, state, linked trials/publications.

    Examples: oncolit records show pubmed:22663011 --json ; oncolit records show NCT02576665
    """
    rid = normalise_id(record_id)
    with open_catalog() as catalog:
        data = catalog.get(rid)
        if raw:
            typer.echo(catalog.raw(rid, data["version"]).decode("utf-8", errors="replace"))
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
    emit(data, as_json, "\n".join(rows) or "the catalog is empty")
