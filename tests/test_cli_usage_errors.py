"""Bad option values are one clear `error: …` line and exit 2, not a traceback (issue 18, item 9).

`search --limit -1` died with an OverflowError from inside Qdrant Edge, and `--since` after
`--until` with a ValueError from the window (ingest) or a silent "no matching records" (search,
ask). These are checked before anything is opened, so no index, model or source is needed here.
"""

from __future__ import annotations

import pytest

from tests.helpers import run_cli

BACKWARDS = ("--since", "2020-01-01", "--until", "2019-01-01")


@pytest.mark.parametrize("args, message", [
    (("search", "melanoma", "--limit", "-1"), "error: --limit must be 1 or more, not -1"),
    (("search", "melanoma", "--limit", "0"), "error: --limit must be 1 or more, not 0"),
    (("search", "melanoma", *BACKWARDS), "error: --since 2020-01-01 is after --until 2019-01-01"),
    (("ask", "does trametinib work in melanoma?", *BACKWARDS), "error: --since 2020-01-01 is after --until"),
    (("ingest", "pubmed", "--query", "melanoma", *BACKWARDS), "error: --since 2020-01-01 is after --until"),
    (("ingest", "ctgov", "--query", "melanoma", *BACKWARDS), "error: --since 2020-01-01 is after --until"),
    (("ingest", "pubmed", "--query", "melanoma", "--since", "2999-01-01"), "error: the window starts (2999-01-01)"),
], ids=["limit-negative", "limit-zero", "search-range", "ask-range", "pubmed-range", "ctgov-range", "future-since"])
def test_bad_values_are_one_error_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    proc = run_cli(*args, check=False, env={"ONCOLIT_PUBMED__BASE_URL": "http://127.0.0.1:9/",
                                            "ONCOLIT_CTGOV__BASE_URL": "http://127.0.0.1:9/"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
