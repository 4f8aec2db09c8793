"""The bad-input corpus (class "bad input"): hostile and broken inputs through the real parsers and the
real `oncolit` commands.

Every case must end in one of the safe outcomes — the bad record quarantined with its error, or the bad
file / argument refused with one clear line and a non-zero exit — and never in a traceback, and never
with a good record lost: each bad PubMed article travels in a file with good ones, each bad file or
study goes in one run with a good file, and the good ones must all be stored. Some cases add their own
check (an entity that must not be expanded, a local file that must not be read, text that must reach
the terminal inert).
"""

from __future__ import annotations

import json
import re
import resource
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ingest.catalog import Catalog
from ingest.pubmed_xml import iter_pubmed_file
from tests.reliability.inproc import Outcome, oncolit
from tests.reliability.tally import TALLY

CLASS = "bad input"
PUBDATE = re.compile(rb"<PubDate>.*?</PubDate>", re.DOTALL)
TITLE = re.compile(rb"<ArticleTitle>.*?</ArticleTitle>", re.DOTALL)
ABSTRACT = re.compile(rb"<Abstract>.*?</Abstract>", re.DOTALL)
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
MiB = 1 << 20


@pytest.fixture(scope="module")
def articles(shared_data: Path) -> list[tuple[str, bytes]]:
    """(record id, raw <PubmedArticle>) of recorded articles that have a title, a PubDate and an abstract."""
    out = [(i.record.record_id, i.raw) for i in iter_pubmed_file(shared_data / "pubmed" / "constructed" / "hoc-0004.xml.gz")
           if PUBDATE.search(i.raw) and TITLE.search(i.raw) and ABSTRACT.search(i.raw)]
    assert len(out) >= 8
    return out


def _article_set(*records: bytes, prolog: bytes = b"") -> bytes:
    return b'<?xml version="1.0" ?>\n' + prolog + b"<PubmedArticleSet>" + b"".join(records) + b"</PubmedArticleSet>\n"


def _catalog_state(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "catalog.sqlite"
    if not path.exists():
        return {"ids": set(), "quarantined": set(), "texts": ""}
    with Catalog(f"sqlite:///{path}") as catalog:
        rows = list(catalog.iter_records(active_only=False))
        return {"ids": {row["id"] for row, _ in rows}, "quarantined": {q.record_id for q in catalog.quarantine()},
                "texts": " ".join(f"{rec.title} {getattr(rec, 'abstract_text', '')}" for _, rec in rows),
                "running": [r["status"] for r in catalog.runs(10) if r["status"] == "running"]}


def _verdict(case: str, run: Outcome, data_dir: Path, good: set[str], bad_id: str | None,
             extra: Callable[[dict[str, Any]], str | None] | None = None) -> None:
    """The common rule, then the case's own check; recorded on the scoreboard, then asserted."""
    state = _catalog_state(data_dir)
    problems = []
    if run.traceback or "Traceback" in run.stderr:
        problems.append(f"traceback: {run.traceback or run.stderr[-800:]}")
    if not good <= state["ids"]:
        problems.append(f"good records lost: {sorted(good - state['ids'])[:5]}")
    # Only the bad input can be quarantined here; an article without a PMID is kept under a hash of its bytes.
    quarantined = bool(state["quarantined"]) and (bad_id is None or bad_id in state["quarantined"]
                                                 or all(q.startswith("pubmed:unreadable-") for q in state["quarantined"]))
    stored_ok = run.code == 0 and bad_id is not None and bad_id in state["ids"]
    refused = run.code != 0 and run.clear_error
    if not (quarantined or refused or stored_ok):
        problems.append(f"neither quarantined nor a clear error: exit {run.code}, {run.stderr[-400:]}")
    if quarantined and run.code != 3:
        problems.append(f"a run that quarantined a record must say so with exit 3, not {run.code}")
    if state.get("running"):
        problems.append("a run row left running")
    if extra is not None and (why := extra(state)):
        problems.append(why)
    TALLY.record(CLASS, case, held=not problems)
    assert not problems, (case, problems)


# --- PubMed XML: a bad article among good ones ------------------------------------------------------

def _year(y: bytes) -> Callable[[bytes], bytes]:
    return lambda raw: PUBDATE.sub(b"<PubDate><Year>" + y + b"</Year><Month>Jul</Month></PubDate>", raw, count=1)


def _title(t: bytes) -> Callable[[bytes], bytes]:
    return lambda raw: TITLE.sub(b"<ArticleTitle>" + t.replace(b"\\", b"\\\\") + b"</ArticleTitle>", raw, count=1)


def _huge_abstract(raw: bytes) -> bytes:
    part = b"Tumour response was assessed every eight weeks. " * (8 * MiB // 49)
    sections = b"".join(b'<AbstractText Label="PART %d">' % i + part + b"</AbstractText>" for i in range(6))
    return ABSTRACT.sub(lambda _: b"<Abstract>" + sections + b"</Abstract>", raw, count=1)


ARTICLE_CASES: dict[str, Callable[[bytes], bytes]] = {
    "PubDate year 0": _year(b"0"),
    "PubDate year 99999": _year(b"99999"),
    "PubDate year -1": _year(b"-1"),
    "PubDate year not a number": _year(b"MMXX"),
    "PubDate month 13 day 99": lambda raw: PUBDATE.sub(
        b"<PubDate><Year>2020</Year><Month>13</Month><Day>99</Day></PubDate>", raw, count=1),
    "48 MB abstract in six 8 MB sections": _huge_abstract,
    "title nested 5000 elements deep": _title(b"<i>" * 5000 + b"deep" + b"</i>" * 5000),
    "title nested 200 elements deep": _title(b"<b>" * 200 + b"deep" + b"</b>" * 200),
    "title with C1 controls (8-bit CSI/OSC) and bidi override": _title(
        "\u009b2J\u009d0;c1-title\u009c\u202eesrever\u202c Real title".encode()),
    "title with C1 controls as character references": _title(b"&#x9b;2J&#x9d;0;c1-title&#x9c; Real title"),
    "title with ESC as a character reference": _title(b"&#27;[2J&#x1b;]0;pwned-title&#7; Real title"),
    "title with a raw ESC byte": _title(b"\x1b[2J\x1b]0;pwned-title\x07 Real title"),
    "title with a NUL byte": _title(b"before\x00after"),
    "title with NUL as a character reference": _title(b"before&#0;after"),
    "title with invalid UTF-8": _title(b"caf\xc3\x28 \xff\xfe bad bytes"),
    "title with an undefined entity": _title(b"&undefined; and &amp;"),
    "empty title and no abstract": lambda raw: ABSTRACT.sub(b"", TITLE.sub(b"<ArticleTitle/>", raw, count=1), count=1),
    "no PMID": lambda raw: re.sub(rb"<PMID[^>]*>\d+</PMID>", b"", raw, count=1),
    "PMID not a number": lambda raw: re.sub(rb"(<PMID[^>]*>)\d+(</PMID>)", rb"\g<1>12ab\g<2>", raw, count=1),
}
def _safe_records_show(record_id: str) -> Callable[[dict[str, Any]], str | None]:
    """When the hostile title was stored, `records show` must print it inert (no control, no debris)."""
    def check(state: dict[str, Any]) -> str | None:
        if record_id not in state["ids"]:
            return None
        shown = oncolit("records", "show", record_id)
        if shown.code != 0:
            return f"records show failed: {shown.stderr}"
        if UNSAFE.search(shown.stdout) or "c1-title" in shown.stdout or "pwned-title" in shown.stdout:
            return f"terminal controls reached `records show`: {shown.stdout[:300]!r}"
        if "Real title" not in shown.stdout:
            return "the readable words of the title were lost"
        return None
    return check


@pytest.mark.parametrize("case", ARTICLE_CASES)
def test_bad_pubmed_article_among_good_ones(case: str, articles: list[tuple[str, bytes]], tmp_path: Path,
                                            isolated_env: Path) -> None:
    good, (bad_id, bad_raw) = articles[:5], articles[5]
    path = tmp_path / "update.xml"
    path.write_bytes(_article_set(*(raw for _, raw in good[:2]), ARTICLE_CASES[case](bad_raw),
                                  *(raw for _, raw in good[2:])))
    other = tmp_path / "other.xml"  # a second file in the same run: a refused file must not take it down
    other.write_bytes(_article_set(articles[6][1]))
    run = oncolit("ingest", "pubmed-files", str(path), str(other), "--json")
    # A file that is not XML (a NUL, an ESC, bad UTF-8, past the parser's depth limit) is refused as a
    # whole: its good records go with it, the message must name it, and the other file must be in.
    # A well-formed file with one bad article must keep every good article of it.
    results = {f["path"]: f["status"] for f in json.loads(run.stdout)["file_results"]} if run.stdout else {}
    not_xml = any(why in run.last_line for why in ("not well-formed", "safety limits"))
    refused_file = results.get(str(path)) == "failed" and not_xml
    expected = {articles[6][0]} | (set() if refused_file else {rid for rid, _ in good})
    if refused_file and path.name not in run.last_line:
        expected.add("the error must name the refused file")
    checks = _safe_records_show(bad_id) if "controls" in case or "ESC" in case else None
    _verdict(f"PubMed article: {case}", run, isolated_env, expected, bad_id, checks)


# --- PubMed XML: whole hostile files ----------------------------------------------------------------

def _gzip_bomb(path: Path, gib: int = 1) -> None:
    """~1 GiB of zero bytes in ~1 MB of gzip: a reader that decompresses it whole runs out of memory."""
    zeros, packer = bytes(16 * MiB), zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as out:
        for _ in range(64 * gib):
            out.write(packer.compress(zeros))
        out.write(packer.flush())


FILE_CASES: dict[str, Callable[[Path, list[tuple[str, bytes]]], Path]] = {}


def _file_case(name: str):
    def register(fn: Callable[[Path, list[tuple[str, bytes]]], Path]):
        FILE_CASES[name] = fn
        return fn
    return register


@_file_case("entity-expansion bomb (billion laughs)")
def _bomb(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    from ingest.replay_faults import billion_laughs_document
    (tmp / "bomb.xml").write_bytes(billion_laughs_document("PubmedArticleSet"))
    return tmp / "bomb.xml"


@_file_case("external entity (XXE) to /etc/passwd")
def _xxe(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    from ingest.replay_faults import xxe_document
    (tmp / "xxe.xml").write_bytes(xxe_document("PubmedArticleSet"))
    return tmp / "xxe.xml"


@_file_case("gzip bomb (1 GiB of zeros)")
def _gz(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    _gzip_bomb(tmp / "bomb.xml.gz")
    return tmp / "bomb.xml.gz"


@_file_case("gzip file cut in half")
def _cut(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    data = zlib.compress(_article_set(*(raw for _, raw in arts[:3])), wbits=31)
    (tmp / "cut.xml.gz").write_bytes(data[: len(data) // 2])
    return tmp / "cut.xml.gz"


@_file_case("empty file")
def _empty(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    (tmp / "empty.xml").write_bytes(b"")
    return tmp / "empty.xml"


@_file_case("a PNG named .xml")
def _png(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    (tmp / "image.xml").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return tmp / "image.xml"


@_file_case("the wrong root element")
def _root(tmp: Path, arts: list[tuple[str, bytes]]) -> Path:
    (tmp / "root.xml").write_bytes(b"<?xml version='1.0'?><html><body>Service unavailable</body></html>")
    return tmp / "root.xml"


@pytest.mark.parametrize("case", FILE_CASES)
def test_hostile_pubmed_file_beside_a_good_one(case: str, articles: list[tuple[str, bytes]], tmp_path: Path,
                                               isolated_env: Path) -> None:
    bad = FILE_CASES[case](tmp_path, articles)
    good = tmp_path / "good.xml"
    good.write_bytes(_article_set(*(raw for _, raw in articles[:3])))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = oncolit("ingest", "pubmed-files", str(bad), str(good), "--json")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024

    def extra(state: dict[str, Any]) -> str | None:
        if "root:" in state["texts"] or "lol" * 20 in state["texts"]:
            return "an entity was expanded into a stored record"
        if grown_mib > 400:
            return f"the reader grew by {grown_mib:.0f} MiB: the input was not bounded"
        if run.code != 0 and bad.name not in run.last_line:
            return f"the error must name the bad file: {run.last_line}"
        return None
    _verdict(f"PubMed file: {case}", run, isolated_env, {rid for rid, _ in articles[:3]}, None, extra)


# --- CT.gov JSON: a bad study beside a good one -----------------------------------------------------

def _study(shared_data: Path) -> dict[str, Any]:
    return json.loads((shared_data / "ctgov" / "real" / "biomcp" / "get_nct06382129_20260811.json").read_text())


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def apply(study: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        node = study
        for key in parents:
            node = node[key]
        node[last] = value
        return study
    return apply


def _drop(path: str) -> Callable[[dict[str, Any]], Any]:
    def apply(study: dict[str, Any]) -> Any:
        *parents, last = path.split(".")
        node = study
        for key in parents:
            node = node[key]
        del node[last]
        return study
    return apply


P = "protocolSection"
STUDY_CASES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "nctId a number": _set(f"{P}.identificationModule.nctId", 6382129),
    "nctId not an NCT id": _set(f"{P}.identificationModule.nctId", "../../etc/passwd"),
    "briefTitle a list": _set(f"{P}.identificationModule.briefTitle", ["a", "b"]),
    "briefTitle null": _set(f"{P}.identificationModule.briefTitle", None),
    "conditions a dict": _set(f"{P}.conditionsModule.conditions", {"a": 1}),
    "phases a string": _set(f"{P}.designModule.phases", "PHASE3"),
    "enrollment count a word": _set(f"{P}.designModule.enrollmentInfo.count", "many"),
    "last update date garbage": _set(f"{P}.statusModule.lastUpdatePostDateStruct", {"date": "garbage"}),
    "start date year 0": _set(f"{P}.statusModule.startDateStruct.date", "0000-07"),
    "start date year 99999": _set(f"{P}.statusModule.startDateStruct.date", "99999-01-01"),
    "statusModule a string": _set(f"{P}.statusModule", "RECRUITING"),
    "no identificationModule": _drop(f"{P}.identificationModule"),
    "no protocolSection": _drop(P),
    "summary with NUL and ESC": _set(f"{P}.descriptionModule.briefSummary",
                                     "before\u0000after \u001b[2J\u001b]0;pwned-title\u0007 Real summary"),
    "a study that is a list of numbers": lambda study: [1, 2, 3],
    "a study nested 100000 arrays deep": lambda study: "DEEP",
}


@pytest.mark.parametrize("case", STUDY_CASES)
def test_bad_ctgov_study_beside_a_good_one(case: str, shared_data: Path, tmp_path: Path, isolated_env: Path) -> None:
    study = STUDY_CASES[case](_study(shared_data))
    bad = tmp_path / "a-bad.json"
    bad.write_text("[" * 100000 + "]" * 100000 if study == "DEEP" else json.dumps(study))
    good = shared_data / "ctgov" / "real" / "biomcp" / "get_nct06604689_20260811.json"
    run = oncolit("ingest", "ctgov-files", str(bad), str(good), "--json")

    def extra(state: dict[str, Any]) -> str | None:
        if "ctgov:NCT06382129" in state["ids"] and case.startswith("summary"):
            shown = oncolit("records", "show", "NCT06382129")
            if UNSAFE.search(shown.stdout) or "pwned-title" in shown.stdout:
                return f"terminal controls reached `records show`: {shown.stdout[:300]!r}"
        if run.code != 0 and not run.clear_error:
            return "not a clear error"
        return None
    _verdict(f"CT.gov study: {case}", run, isolated_env, {"ctgov:NCT06604689"}, "ctgov:NCT06382129", extra)


def test_ctgov_zip_bomb_is_refused(shared_data: Path, tmp_path: Path, isolated_env: Path) -> None:
    bomb = tmp_path / "bulk.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("NCT00000000.json", "w", force_zip64=True) as member:
            zeros = bytes(16 * MiB)
            for _ in range(36):  # 576 MiB, over the 512 MiB a payload may be
                member.write(zeros)
    good = shared_data / "ctgov" / "real" / "biomcp" / "get_nct06604689_20260811.json"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run = oncolit("ingest", "ctgov-files", str(bomb), str(good), "--json")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    _verdict("CT.gov file: zip bomb (576 MiB member)", run, isolated_env, {"ctgov:NCT06604689"}, None,
             lambda state: f"memory grew {grown_mib:.0f} MiB" if grown_mib > 400 else None)


@pytest.mark.slow  # loads the embedder (~10 s); tests/test_terminal_escapes.py covers `search` in the default tier
def test_c1_controls_in_a_pubmed_title_reach_search_and_the_queue_inert(articles: list[tuple[str, bytes]],
                                                                        tmp_path: Path, isolated_env: Path) -> None:
    """XML 1.0 cannot carry ESC, but it can carry the 8-bit C1 controls (CSI U+009B, OSC U+009D) and bidi
    overrides, which many terminals obey. Through `index sync`, `search` and `curate queue` (text output)."""
    rid, raw = articles[0]
    hostile = "\u009b2J\u009d0;c1-title\u009c\u202eesrever\u202c Melanoma adjuvant nivolumab Real title"
    path = tmp_path / "update.xml"
    path.write_bytes(_article_set(_title(hostile.encode())(raw), *(r for _, r in articles[1:4])))
    steps = [oncolit("ingest", "pubmed-files", str(path)), oncolit("index", "sync"),
             oncolit("search", "melanoma adjuvant nivolumab", "--limit", "5"), oncolit("curate", "queue")]
    problems = [f"`{i}` exit {s.code}: {s.stderr[-300:]}" for i, s in enumerate(steps) if s.code != 0 or s.traceback]
    for name, shown in (("search", steps[2].stdout), ("curate queue", steps[3].stdout)):
        if UNSAFE.search(shown) or "c1-title" in shown:
            problems.append(f"terminal controls reached `{name}`: {shown[:300]!r}")
    if rid not in steps[2].stdout or "Real title" not in steps[2].stdout:
        problems.append(f"the record must still be found and its words shown: {steps[2].stdout[:300]!r}")
    TALLY.record(CLASS, "PubMed title with C1 controls through search and curate queue", held=not problems)
    assert not problems, problems
