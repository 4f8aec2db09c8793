"""What every command needs: settings, the shared resources (catalog, curation, index, LLM), output in
text or JSON, progress bars."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from ingest.errors import UsageError
from oncolit.cli.terminal import safe_text

if TYPE_CHECKING:  # imported where used: every command imports this module, few need all of these
    from rich.progress import Progress

    from ingest.catalog import Catalog
    from oncolit.resources import Resources
    from oncolit.settings import Settings

console = Console(stderr=True)

# Exit codes (README, "Exit codes"): what a script or scheduler may branch on.
EXIT_OK = 0
EXIT_FAILED = 1  # nothing (more) was done; `error: ...` on stderr says why and what to do
EXIT_USAGE = 2  # a bad option or argument (click's own code)
EXIT_PARTIAL = 3  # some work was committed and some was not; stderr and --json say which
EXIT_MISMATCH = 4  # `index verify` found the index and the catalog disagree (run it with --repair)


def exit_with(code: int, message: str) -> None:
    """End a command that did part of its work: one line on stderr (after the normal output on
    stdout, so --json stays parseable), then the exit code."""
    if code != EXIT_OK:
        sys.stderr.write(f"{message}\n")
        raise typer.Exit(code)
# What a new user sees instead of "no matching records" / a table of zeros when nothing was ingested yet.
EMPTY_CATALOG = ("the catalog is empty: run `oncolit ingest pubmed --query \"melanoma\"` (or `oncolit ingest ctgov "
                 "--query ...`, or `oncolit demo` for the recorded data) first, then `oncolit index sync`")

JsonOpt = typer.Option(False, "--json", "-j", help="Print machine-readable JSON on stdout.")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    from oncolit.settings import Settings

    return Settings()


@contextmanager
def cli_resources(*, backend: str | None = None, model: str | None = None,
                  extractive_if_missing: bool = True) -> Iterator[Resources]:
    """The command's `Resources` from the settings; each is built when first used, all closed at the end."""
    from oncolit.resources import open_resources

    with open_resources(get_settings(), backend=backend, model=model,
                        extractive_if_missing=extractive_if_missing) as res:
        yield res


def catalog_is_empty(settings: Settings, *, open_it: bool) -> bool:
    """No active record: the answer to "why did search find nothing" that a new user needs. A SQLite catalog
    that was never created answers without opening anything (free before a search); `open_it` also counts."""
    if not settings.catalog_url and not (settings.data_dir / "catalog.sqlite").exists():
        return True
    if not open_it:
        return False
    with open_catalog() as catalog:
        return bool(catalog.stats()["total"]["active"] == 0)


@contextmanager
def open_catalog() -> Iterator[Catalog]:
    """Just the catalog (the `Resources` of a command that needs nothing else)."""
    with cli_resources() as res:
        yield res.catalog


def emit(data: Any, as_json: bool, text: str | None = None) -> None:
    """JSON on stdout for scripts; otherwise the given text (or pretty JSON) for people, with terminal
    escape sequences and control characters taken out (`terminal.safe_text`: record text is untrusted)."""
    if as_json:
        sys.stdout.write(json.dumps(data, default=_json_default, indent=2, ensure_ascii=False) + "\n")
    else:
        shown = text if text is not None else json.dumps(data, default=_json_default, indent=2, ensure_ascii=False)
        Console().print(safe_text(shown), highlight=False, markup=False, soft_wrap=True)


def echo_raw(text: str) -> None:
    """A stored payload, exact when piped (it is the source's bytes) and made safe on a terminal."""
    typer.echo(safe_text(text) if sys.stdout.isatty() else text)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, set):
        return sorted(value)
    return str(value)


def parse_day(value: str | None, name: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{name} must be a date like 2026-11-27, not {value!r}") from None


def parse_range(since: str | None, until: str | None) -> tuple[dt.date | None, dt.date | None]:
    """--since and --until as dates; a range that ends before it starts is a usage error, not a
    traceback from deep inside (ingest) or a silent "no matching records" (search, ask)."""
    start, end = parse_day(since, "--since"), parse_day(until, "--until")
    if start and end and start > end:
        raise UsageError(f"--since {start} is after --until {end}: no day is in between; swap them")
    return start, end


def check_limit(limit: int, name: str = "--limit") -> int:
    if limit < 1:
        raise UsageError(f"{name} must be 1 or more, not {limit}")
    return limit


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Progress]:
    """A progress bar on stderr, only when stderr is a terminal (logs and CI stay clean)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, disable=not console.is_terminal)
    with progress:
        progress.add_task(description, total=total)
        yield progress
