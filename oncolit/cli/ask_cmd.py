"""`oncolit ask` (a cited answer from the catalog) and `oncolit serve` (the HTTP API)."""

from __future__ import annotations

from typing import Any

import typer

from oncolit.cli.common import JsonOpt, cli_resources, emit, get_settings, parse_range
from synthesis.llm import BACKENDS


def ask(
    question: str = typer.Argument(..., help="The question, in plain words."),
    since: str = typer.Option(None, help="Only records published on or after (YYYY-MM-DD)."),
    until: str = typer.Option(None, help="Only records published on or before (YYYY-MM-DD)."),
    design: list[str] = typer.Option([], help="Study design (rct, meta_analysis, cohort, ...); repeatable."),
    type_: str = typer.Option(None, "--type", help="article or trial."),
    limit: int = typer.Option(8, min=1, max=20, help="Records retrieved to answer from."),
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
    from oncolit.api_routes.deps import Filters  # the HTTP API's filters, so both surfaces read them alike
    from synthesis.answer import answer

    start, end = parse_range(since, until)
    filters = Filters(since=start, until=end, type=type_, design=design).search_filter()
    with cli_resources(backend=backend, model=model) as res:
        result = answer(question, res.searcher, res.catalog, res.llm, filters=filters, limit=limit,
                        models=res.findings_models, answerer=res.answer_model)
    data = result.as_dict()
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
    port: int = typer.Option(8000, help="TCP port."),
) -> None:
    """Serve the HTTP API (POST /ask, GET /search, GET /records/{id}; docs at /docs).

    Examples:
      oncolit serve
      oncolit serve --host 0.0.0.0 --port 8080
    """
    import uvicorn

    from oncolit.api import create_app

    uvicorn.run(create_app(get_settings()), host=host, port=port, log_level="info")
