"""Entry point: `oncolit` and its command groups. Errors become one line on stderr and exit 1 (3 when
part of the work was committed: see `oncolit.cli.common` for the exit codes).

The command groups are imported when a command runs, not at start: `COMMANDS` names where each one lives
and carries the line `oncolit --help` shows for it (`oncolit.cli.lazy`), so `oncolit --help` imports none of
them and `oncolit records show` imports only `records_cmd`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from oncolit import __version__
from oncolit.cli.lazy import Target, lazy_group


def _eval_app() -> Any:
    """`oncolit eval ...` is eval's own Typer app: the one place the CLI reaches the measuring floor (a
    known upward import in pyproject's [tool.oncolit.layers], so it is written as an import statement)."""
    from eval.cli import app as eval_app

    return eval_app


# name -> (where it lives, the first paragraph of its help), in the order `oncolit --help` lists them.
COMMANDS: dict[str, tuple[Target, str]] = {
    "search": ("oncolit.cli.index_cmd:search",
               "Search the evidence base: ranked records with scores and the matching passage."),
    "extract": ("oncolit.cli.synthesis_cmd:extract",
                "Extract findings (design, population, arms, outcomes with estimates, conclusion, quotes)."),
    "grade": ("oncolit.cli.synthesis_cmd:grade",
              "Grade a record's evidence and explain it: design, level and every reason with its evidence."),
    "digest": ("oncolit.cli.digest_cmd:digest",
               "Build and send digests now (the scheduler does this at each subscriber's local send hour)."),
    "ask": ("oncolit.cli.ask_cmd:ask",
            "Answer a question from the catalog; every citation is a catalog record, every number is checked."),
    "serve": ("oncolit.cli.ask_cmd:serve",
              "Serve the HTTP API (POST /ask, GET /search, GET /records/{id}; docs at /docs)."),
    "demo": ("oncolit.cli.demo_cmd:demo",
             "Run the main job (ingest -> ...) against the recorded data through the local replay server."),
    "ingest": ("oncolit.cli.ingest_cmd:app", "Pull new and revised records into the catalog."),
    "searches": ("oncolit.cli.searches_cmd:app", "Saved searches: what OncoLit watches in each source."),
    "records": ("oncolit.cli.records_cmd:app", "Inspect catalog records."),
    "replay": ("oncolit.cli.replay_cmd:app", "Local replay of recorded PubMed / ClinicalTrials.gov responses."),
    "schedule": ("oncolit.cli.schedule_cmd:app", "Run saved searches on their schedules."),
    "models": ("oncolit.cli.models_cmd:app",
               "Language models: pull the pinned GGUF files and see which are present."),
    "index": ("oncolit.cli.index_cmd:app", "The vector index (Qdrant Edge by default; a Qdrant server by URL)."),
    "subscribers": ("oncolit.cli.digest_cmd:subscribers_app",
                    "Digest subscribers: who gets which topics, how often, in which time zone."),
    "curate": ("oncolit.cli.curate_cmd:app",
               "Curation: sources, rules, decisions, the review queue, audit, users and keys."),
    "eval": (_eval_app, "Evaluation suites: retrieval, extraction, grading, citations, qa, perf; and compare."),
    "finetune": ("oncolit.cli.finetune_cmd:app",
                 "Fine-tuning: datasets from real labels and verified teacher outputs, LoRA training, held-out "
                 "evaluation, export to llama.cpp."),
}

app = typer.Typer(help="OncoLit: a living, searchable, cited oncology evidence base.", cls=lazy_group(COMMANDS),
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"oncolit {__version__}")
        raise typer.Exit()


@app.callback()
def _setup(version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                        help="Show the version and exit.")) -> None:
    from oncolit import logs
    from oncolit.cli.common import get_settings

    settings = get_settings()
    logs.configure(settings.log_level, settings.log_json)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # the two kinds below become one line; anything else is a bug: traceback
        from pydantic import ValidationError

        from ingest.errors import OncoLitError

        if os.environ.get("ONCOLIT_DEBUG") or not isinstance(exc, (OncoLitError, ValidationError)):
            raise
        if isinstance(exc, OncoLitError):
            sys.stderr.write(f"error: {exc}\n")
            sys.exit(exc.exit_code)
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        sys.stderr.write(f"error: invalid settings ({problems}); check ONCOLIT_* variables and the TOML file\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
