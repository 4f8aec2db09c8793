"""Terminal escape sequences in record text never reach the terminal (issue 18, item 7).

A CT.gov study (JSON may carry ESC) with a screen clear, colours, a window title, an OSC 8
hyperlink, an OSC 52 clipboard write, 8-bit CSI, carriage returns and a bidi override in its title
and summary used to be printed raw by `search`, `records show`, `curate queue` and `ask`. Every
text output now goes through `oncolit.cli.terminal.safe_text` (in `emit`); JSON keeps the exact text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from oncolit.cli.terminal import safe_text
from tests.helpers import cli_json, run_cli

NCT = "NCT06382129"
HOSTILE = ("\x1b[2J\x1b[H\x1b]0;pwned-title\x07\x1b[8mhidden\x1b[0m \x1b[31mRed\x1b[0m "
           "\x1b]8;;https://evil.example/x\x1b\\click here\x1b]8;;\x1b\\ \x1b]52;c;ZXZpbA==\x07"
           "\x9b2J\x9d0;c1-title\x9c fake\rreal \u202eesrever\u202c \x1bc\x07\x08")
# What must not appear on a terminal: controls (newline and tab aside), C1, bidi controls.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("sequence, shown", [
    ("\x1b[2J\x1b[Hafter", "after"),                                  # clear screen, cursor home
    ("\x1b[1;31mred\x1b[0m", "red"),                                  # colours
    ("\x1b]0;title\x07x", "x"), ("\x1b]2;title\x1b\\x", "x"),         # window title (BEL / ST ended)
    ("\x1b]8;;https://evil.example\x1b\\text\x1b]8;;\x1b\\", "text"),  # OSC 8 hyperlink
    ("\x1b]52;c;ZXZpbA==\x07x", "x"),                                 # clipboard write
    ("\x1bPq#0;2;0;0;0\x1b\\x", "x"),                                 # DCS (sixel)
    ("\x9b31mc1\x9b0m", "c1"), ("\x9d0;t\x9cx", "x"),                 # 8-bit CSI and OSC
    ("\x1bcreset", "reset"), ("\x1b(0x", "x"),                        # RIS, charset switch
    ("over\rwrite\x08\x07\x7f", "overwrite"),                         # CR, BS, BEL, DEL
    ("\u202eevil\u202c\u2066iso\u2069", "evil" + "iso"),              # bidi override, isolate
    ("\x1b[", ""), ("\x1b]0;unterminated", ""),                       # cut short at the end
    ("line one\n\tline two — café α", "line one\n\tline two — café α"),  # ordinary text untouched
])
def test_safe_text_removes_whole_sequences_and_keeps_words(sequence: str, shown: str) -> None:
    assert safe_text(sequence) == shown


def _hostile_study(shared_data: Path, folder: Path) -> Path:
    study = json.loads((shared_data / "ctgov" / "real" / "biomcp" / f"get_{NCT.lower()}_20260811.json").read_text())
    ident = study["protocolSection"]["identificationModule"]
    ident["briefTitle"] = f"BL-B01D1 versus docetaxel {HOSTILE} lung cancer"
    ident["officialTitle"] = ident["briefTitle"]
    desc = study["protocolSection"]["descriptionModule"]
    desc["briefSummary"] = f"{HOSTILE} {desc['briefSummary']}"
    path = folder / "hostile.json"
    path.write_text(json.dumps(study))
    return path


def _assert_safe(output: str) -> None:
    assert not UNSAFE.search(output), repr(UNSAFE.search(output))
    for debris in ("[2J", "pwned-title", "evil.example", "ZXZpbA", "c1-title", "]8;;"):
        assert debris not in output, debris


def test_record_text_printed_by_every_command_is_inert(shared_data: Path, tmp_path: Path) -> None:
    run_cli("ingest", "ctgov-files", str(_hostile_study(shared_data, tmp_path)))
    shown = run_cli("records", "show", NCT).stdout
    _assert_safe(shown)
    assert "BL-B01D1 versus docetaxel" in shown and "click here" in shown and "lung cancer" in shown
    stored = cli_json("records", "show", NCT)["title"]
    assert "\x1b]8;;https://evil.example/x" in stored, "JSON keeps the exact stored text"

    queue = run_cli("curate", "queue").stdout
    _assert_safe(queue)
    assert f"ctgov:{NCT}" in queue

    run_cli("index", "sync")
    found = run_cli("search", "BL-B01D1 docetaxel lung cancer", "--limit", "3").stdout
    _assert_safe(found)
    assert f"ctgov:{NCT}" in found and "BL-B01D1" in found

    answered = run_cli("ask", "Is BL-B01D1 better than docetaxel in EGFR wild-type lung cancer?",
                       "--backend", "none").stdout
    _assert_safe(answered)
    assert "BL-B01D1" in answered
