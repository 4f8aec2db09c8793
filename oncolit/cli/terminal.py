"""Record text made safe to print on a terminal: `safe_text`, applied by every text output.

Titles, abstracts, trial summaries, notes and imported files come from outside, and a terminal
obeys an escape sequence wherever it appears. Printed raw, one record can clear the screen, recolour
or hide the text around it, retitle the window, plant an OSC 8 hyperlink whose visible words differ
from its target, write to the clipboard (OSC 52), or rewrite a line with carriage returns and
backspaces. CT.gov JSON can carry ESC itself (`\\u001b`); XML cannot, but allows the 8-bit C1
forms (U+009B is CSI to many terminals).

So text bound for a terminal loses, before it is printed:

* whole escape sequences (CSI, OSC, DCS/SOS/PM/APC strings, two-byte escapes, and their C1 forms),
  so no parameter debris such as "[2J" is left behind;
* every other C0/C1 control character except newline and tab (CR, BS, BEL, DEL, ...);
* Unicode bidirectional embedding, override and isolate controls, which reorder what is displayed
  (a "Trojan source" line reads differently from what it says).

JSON output is left exact (the encoder escapes C0 controls; scripts get the stored text).
`oncolit.cli.common.emit` calls this on every text it prints, so no command can forget it.
"""

from __future__ import annotations

import re

_ESCAPE_SEQUENCE = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]?              # CSI: colours, cursor moves, screen and line clears
    | \x9b[0-?]*[ -/]*[@-~]?                # the same, 8-bit
    | \x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?   # OSC: window title, OSC 8 links, OSC 52 clipboard
    | \x9d[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?     # the same, 8-bit
    | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?        # DCS, SOS, PM, APC strings
    | [\x90\x98\x9e\x9f][^\x1b\x9c]*(?:\x1b\\|\x9c)?  # the same, 8-bit
    | \x1b[ -/]*[0-~]?                      # other escapes: charset switches, RIS (full reset), ...
    """,
    re.VERBOSE,
)
# C0 but tab and newline, DEL, C1; bidi embeddings/overrides (U+202A-E) and isolates (U+2066-9).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe_text(text: str) -> str:
    """`text` without terminal escape sequences and control characters (newline and tab kept)."""
    if text.isprintable():  # the common case: nothing to remove (newlines and tabs are not printable)
        return text
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))
