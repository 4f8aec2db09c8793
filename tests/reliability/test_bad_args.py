"""The bad-input corpus, part two (class "bad input"): bad command-line arguments and a broken environment,
through the real `oncolit` entry point. Each must be one clear error line (or click's usage message) and a
non-zero exit — never a traceback, and never terminal controls echoed back from the argument.

Part one, the hostile records and files, is tests/reliability/test_bad_input.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.reliability.inproc import oncolit
from tests.reliability.tally import TALLY
from tests.reliability.test_bad_input import CLASS, UNSAFE


@dataclass(frozen=True)
class Args:
    name: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    setup: str | None = None  # "search": a saved search exists; "garbage catalog"; "data dir is a file"


ARG_CASES = [
    Args("search --limit -1", ("search", "melanoma", "--limit", "-1")),
    Args("search --limit 0", ("search", "melanoma", "--limit", "0")),
    Args("search --limit abc", ("search", "melanoma", "--limit", "abc")),
    Args("ingest --since after --until", ("ingest", "pubmed", "--search", "w", "--since", "2026-11-05",
                                          "--until", "2026-11-01"), setup="search"),
    Args("ingest --since 2026-13-45", ("ingest", "pubmed", "--search", "w", "--since", "2026-13-45"), setup="search"),
    Args("ingest --until yesterday", ("ingest", "pubmed", "--search", "w", "--until", "yesterday"), setup="search"),
    Args("ingest --since 0000-01-01", ("ingest", "pubmed", "--search", "w", "--since", "0000-01-01"), setup="search"),
    Args("ingest --since 99999-01-01", ("ingest", "pubmed", "--search", "w", "--since", "99999-01-01"),
         setup="search"),
    Args("ingest an unknown saved search", ("ingest", "pubmed", "--search", "nope")),
    Args("searches add --since not-a-date", ("searches", "add", "x", "--query", "q", "--since", "not-a-date")),
    Args("records show ''", ("records", "show", "")),
    Args("records show with terminal escapes in the id", ("records", "show", "pubmed:1\x1b[2J\x1b]0;pwned-title\x07")),
    Args("records show a path-like id", ("records", "show", "pubmed:../../etc/passwd")),
    Args("ingest pubmed-files a missing path", ("ingest", "pubmed-files", "/nonexistent/update.xml")),
    Args("ONCOLIT_PUBMED__BATCH_SIZE=-5", ("ingest", "pubmed", "--search", "w"),
         (("ONCOLIT_PUBMED__BATCH_SIZE", "-5"),)),
    Args("ONCOLIT_DATA_DIR is a regular file", ("records", "stats"), setup="data dir is a file"),
    Args("catalog.sqlite is garbage bytes", ("records", "stats"), setup="garbage catalog"),
]


@pytest.mark.parametrize("case", ARG_CASES, ids=lambda a: a.name)
def test_bad_arguments_and_environment(case: Args, tmp_path: Path, isolated_env: Path) -> None:
    env = dict(case.env)
    if case.setup == "search":
        assert oncolit("searches", "add", "w", "--query", "all[sb]", "--since", "2026-11-05").code == 0
    elif case.setup == "data dir is a file":
        (tmp_path / "not-a-dir").write_text("x")
        env["ONCOLIT_DATA_DIR"] = str(tmp_path / "not-a-dir")
    elif case.setup == "garbage catalog":
        isolated_env.mkdir(parents=True, exist_ok=True)
        (isolated_env / "catalog.sqlite").write_bytes(b"this is not a database\x00" * 100)
    run = oncolit(*case.argv, env=env)
    problems = []
    if run.traceback or "Traceback" in run.stderr:
        problems.append(f"traceback: {run.traceback or run.stderr[-800:]}")
    if run.code in (0, -1) or not run.clear_error:
        problems.append(f"want a clear error and a non-zero exit, got {run.code}: {run.stderr[-400:]}")
    if UNSAFE.search(run.stderr.replace("\n", "")) or "pwned-title" in run.stderr and "\x1b" in run.stderr:
        problems.append(f"terminal controls echoed in the error: {run.stderr!r}")
    TALLY.record(CLASS, f"argument: {case.name}", held=not problems)
    assert not problems, (case.name, problems)
