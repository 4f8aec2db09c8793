"""Entry point: `oncolit` and its command groups. Errors become one line on stderr and exit 1 (3 when
part of the work was committed: see `oncolit.cli.common` for the exit codes)."""

from __future__ import annotations

import os
import sys

import typer
from pydantic import ValidationError

from eval import cli as eval_cli
from ingest.errors import OncoLitError
from oncolit import logs
from oncolit.cli import (
    ask_cmd,
    curate_cmd,
    demo_cmd,
    digest_cmd,
    finetune_cmd,
    index_cmd,
    ingest_cmd,
    models_cmd,
    records_cmd,
    replay_cmd,
    schedule_cmd,
    searches_cmd,
    synthesis_cmd,
)
from oncolit.cli.common import get_settings

app = typer.Typer(help="OncoLit: a living, searchable, cited oncology evidence base.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
app.add_typer(ingest_cmd.app, name="ingest")
app.add_typer(searches_cmd.app, name="searches")
app.add_typer(records_cmd.app, name="records")
app.add_typer(replay_cmd.app, name="replay")
app.add_typer(schedule_cmd.app, name="schedule")
app.add_typer(models_cmd.app, name="models")
app.add_typer(index_cmd.app, name="index")
app.command("search")(index_cmd.search)
app.command("extract")(synthesis_cmd.extract)
app.command("grade")(synthesis_cmd.grade)
app.add_typer(digest_cmd.subscribers_app, name="subscribers")
app.command("digest")(digest_cmd.digest)
app.command("ask")(ask_cmd.ask)
app.command("serve")(ask_cmd.serve)
app.add_typer(curate_cmd.app, name="curate")
app.add_typer(eval_cli.app, name="eval")
app.add_typer(finetune_cmd.app, name="finetune")
app.command("demo")(demo_cmd.demo)


@app.callback()
def _setup() -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_json)


def main() -> None:
    try:
        app()
    except OncoLitError as exc:
        if os.environ.get("ONCOLIT_DEBUG"):
            raise
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)
    except ValidationError as exc:
        if os.environ.get("ONCOLIT_DEBUG"):
            raise
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        sys.stderr.write(f"error: invalid settings ({problems}); check ONCOLIT_* variables and the TOML file\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
