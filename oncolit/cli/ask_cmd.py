"""`oncolit ask` (a cited answer from the catalog) and `oncolit serve` (the HTTP API)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import typer

from ingest.errors import CatalogError, UsageError
from oncolit.cli.common import EMPTY_CATALOG, JsonOpt, catalog_is_empty, cli_resources, emit, get_settings, parse_range
from synthesis.llm import BACKENDS


def ask(
    question: str = typer.Argument(..., help="The question, in plain words."),
    since: str = typer.Option(None, help="Only records published on or after (YYYY-MM-DD)."),
    until: str = typer.Option(None, help="Only records published on or before (YYYY-MM-DD)."),
    design: list[str] = typer.Option([], help="Study design (rct, meta_analysis, cohort, ...); repeatable."),
    type_: str = typer.Option(None, "--type", help="article or trial."),
    limit: int = typer.Option(8, "--limit", "-n", min=1, max=20, help="Records retrieved to answer from."),
    backend: str = typer.Option(None, help=f"LLM backend ({', '.join(BACKENDS)}); default from settings. "
                                           "'none' answers with verbatim quotes, no model needed."),
    model: str = typer.Option(None, help="Model (registry name or path); default from settings."),
    as_json: bool = JsonOpt,
) -> None:
    """Answer a question from the catalog; every citation is a catalog record, every number is checked.

    When the records do not answer it, says so and lists the closest records.

    Examples:
      oncolit ask "Does trametinib improve progression-free survival in BRAF V600 melanoma?"
      oncolit ask "adjuvant pembrolizumab in melanoma" --since 2020-01-01 --design rct --json
      oncolit ask "PET imaging in rectal cancer staging" --backend none
    """
    if backend is not None and backend not in BACKENDS:
        raise typer.BadParameter(f"--backend is one of {', '.join(BACKENDS)}")
    if type_ is not None and type_ not in ("article", "trial"):
        raise typer.BadParameter("--type is article or trial")
    from oncolit.via_server import AskRequest, ask_payload, call_server, serving_owner

    start, end = parse_range(since, until)
    request = AskRequest(question=question, type=type_, since=start, until=end, design=design, limit=limit,
                         extractive=backend == "none")
    settings = get_settings()
    if catalog_is_empty(settings, open_it=False):
        raise CatalogError(EMPTY_CATALOG)
    owner = serving_owner(settings)
    if owner is not None and (model is not None or backend not in (None, "none")):
        raise UsageError(f"{owner.describe()} holds the index and answers with its own model: drop --backend/"
                         "--model (or use --backend none), or stop the server to use another model here")
    data = call_server(settings, "/local/ask", request, timeout=settings.index.wait_seconds)
    if data is None:
        with cli_resources(backend=backend, model=model) as res:
            data = ask_payload(res, request.model_copy(update={"extractive": False}))
    emit(data, as_json, _text(data))


def _text(d: dict[str, Any]) -> str:
    lines = []
    position = d.get("position")
    if position:
        carried = f" — “{position['quote']}” {position['tag']}" if position.get("quote") else f" {position['tag']}"
        lines.append(f"Answer: {position['answer']} ({position['confidence']:.0%}, {position['basis']}){carried}")
    lines += [d["answer"], ""]
    if d["insufficient_evidence"]:
        lines.append("Closest records:")
        lines += [f"  {c['tag']} {c['title']}\n      “{c['quote']}”" for c in d["closest"]]
    else:
        lines += [f"{c['tag']} {c['title']}\n    “{c['quote']}”" for c in d["citations"]]
    checks = f"{d['replaced']} replaced by quotes, {d['dropped']} dropped" if d["replaced"] or d["dropped"] else ""
    lines.append(f"\n({d['model']}, {d['seconds']}s{'; ' + checks if checks else ''})")
    return "\n".join(lines)


def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    schedule: bool = typer.Option(None, "--schedule/--no-schedule",
                                  help="Run the saved searches' scheduled jobs (ingest, index sync, digests) in "
                                       "this server (default: the schedule.in_server setting, on)."),
) -> None:
    """Serve the HTTP API (POST /ask, GET /search, GET /records/{id}; docs at /docs).

    The server owns its data dir's index while it runs (<data dir>/server.json says so): `oncolit search`,
    `ask`, `index sync|rebuild|verify` and `schedule run-once` on the same data dir go through it, and it
    runs the scheduler unless --no-schedule.

    Examples:
      oncolit serve
      oncolit serve --host 0.0.0.0 --port 8080 --no-schedule
    """
    import uvicorn

    from oncolit.api import create_app
    from oncolit.owner import ServerClaim, loopback_url

    settings = get_settings()
    scheduler = settings.schedule.in_server if schedule is None else schedule
    # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it lets the claim remove server.json.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with ServerClaim(settings, loopback_url(host, port), scheduler=scheduler) as owner:
        uvicorn.run(create_app(settings, owner=owner), host=host, port=port, log_level="info")


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)
