"""The reliability tier's scoreboard: every fault, attack or bad input a test tries is counted per class.

Why a scoreboard and not only pass/fail: the README quotes "tried / held / failed" per class, and those
figures must come from a command anyone can rerun (`pytest tests/reliability -m "not slow"` prints them;
add `-m slow` for the long cases). A case *holds* when OncoLit did the safe thing (nothing lost, nothing
let in, a clear error); a case that does not hold is also a failed assertion in its test, so the tally
can never say "held" for a red test.

Use it from a test::

    from tests.reliability.tally import TALLY
    TALLY.record("attack corpus", case_name, held=not leaked)
    assert not leaked, ...
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Tally:
    """Per class: the cases tried and the names of those that did not hold."""

    tried: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def record(self, cls: str, case: str, *, held: bool) -> None:
        self.tried[cls] += 1
        if not held:
            self.failed[cls].append(case)

    def lines(self) -> list[str]:
        """One line per class: `class: tried N, held H, failed F (first failed cases)`."""
        out = []
        for cls in sorted(self.tried):
            n, bad = self.tried[cls], self.failed.get(cls, [])
            line = f"{cls}: tried {n}, held {n - len(bad)}, failed {len(bad)}"
            if bad:
                line += " (" + ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "") + ")"
            out.append(line)
        return out


TALLY = Tally()
