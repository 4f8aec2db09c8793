"""Prints the reliability scoreboard (tests/reliability/tally.py) at the end of any run that used it."""

from __future__ import annotations

import pytest

from tests.reliability.tally import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = TALLY.lines()
    if lines:
        terminalreporter.section("reliability: tried / held / failed per class")
        for line in lines:
            terminalreporter.write_line(line)
