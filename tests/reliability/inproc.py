"""Run the real `oncolit` entry point (`oncolit.cli.main.main`) inside the test process.

Why not a subprocess: the fault matrix and the bad-input corpus run a few hundred commands, and each
`python -m oncolit` start costs about a second of imports on a small machine; in-process the same code
path runs (argument parsing, settings from ONCOLIT_* variables, the error-to-exit-code mapping of
`main`) in milliseconds. What a subprocess would show as a traceback shows here as `traceback`: an
exception that escaped `main`, which is what no case may produce.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import traceback as tb
from collections.abc import Iterator
from dataclasses import dataclass

from oncolit.cli.common import get_settings

# What the replay server's own request threads print when a client hangs up on them (the test's
# upstream, not OncoLit): it shares the redirected stderr, so it is taken out of the command's.
_SERVER_NOISE = re.compile(r"-{40}\nException occurred during processing of request.*?\n-{40}\n", re.DOTALL)


@dataclass(frozen=True)
class Outcome:
    """What one command did: its exit code, its output, and the traceback if one escaped."""

    code: int
    stdout: str
    stderr: str
    traceback: str | None = None

    @property
    def last_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""

    @property
    def clear_error(self) -> bool:
        """A failure told in one `error:` / `partial:` line (or a click usage message), no traceback."""
        if self.traceback is not None or "Traceback" in self.stderr:
            return False
        if self.code == 2 and "Usage:" in self.stderr:  # click's usage errors: "Usage: ..." then an Error box
            return "Error" in self.stderr
        return self.last_line.startswith(("error:", "partial:"))


@contextlib.contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()


def oncolit(*args: str, env: dict[str, str] | None = None) -> Outcome:
    """`oncolit ARGS` with the test's environment plus `env`; never raises for what the command does."""
    from oncolit.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code, trace = 0, None
    argv = sys.argv
    sys.argv = ["oncolit", *args]
    try:
        with _environ(env or {}), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception:  # what a user would see as a traceback
                code, trace = -1, tb.format_exc()
    finally:
        sys.argv = argv
    return Outcome(code, out.getvalue(), _SERVER_NOISE.sub("", err.getvalue()), trace)
