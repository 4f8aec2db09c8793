"""Exports parse back, with parsers we did not write (rispy for RIS, nbib for PubMed MEDLINE), to the
same records: what Zotero and EndNote will import."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import nbib
import pytest
import rispy

from ingest.ctgov_json import iter_ctgov_path
from ingest.curation.exports import CSV_BOM, CSV_COLUMNS, parse_id_list, to_csv, to_medline, to_ris
from ingest.curation.exports_cite import to_bibtex, to_csl_json
from ingest.pubmed_xml import parse_pubmed_xml
from ingest.records import Article

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pubmed"


@pytest.fixture(scope="module")
def records(shared_data: Path) -> list:
    items = parse_pubmed_xml((shared_data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml").read_bytes())
    for name in ("structured_abstract.xml", "unicode.xml", "hostile_title.xml", "book_article.xml",
                 "season_no_abstract.xml"):
        items += parse_pubmed_xml((FIXTURES / name).read_bytes())
    items += list(iter_ctgov_path(shared_data / "ctgov" / "real" / "biomcp" / "get_nct02576665_20260811.json"))
    return [i.record for i in items]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value] if value else []


def _ris_name(a) -> str | None:
    return a.collective_name or (f"{a.last_name}, {a.fore_name}" if a.fore_name else a.last_name)


def test_ris_round_trip_with_rispy(records) -> None:
    extras = {records[0].record_id: {"tags": ["braf"], "notes": ["pivotal\ntrial"]}}
    text = to_ris(records, extras)
    assert "\r\n" in text
    parsed = rispy.loads(text)
    assert len(parsed) == len(records)
    for record, entry in zip(records, parsed):
        assert entry["id"] == record.record_id
        assert entry["title"] == " ".join(record.title.split())
        if isinstance(record, Article):
            assert entry["type_of_reference"] == ("BOOK" if record.is_book else "JOUR")
            assert entry["accession_number"] == record.pmid
            assert entry.get("authors", []) == [n for n in map(_ris_name, record.authors) if n]
            assert entry.get("abstract", "") == " ".join(record.abstract_text.split())
            assert entry.get("year") == (str(record.pub_date.year) if record.pub_date.year else None)
            assert entry.get("secondary_title") == (record.journal.title or record.book_title)
            assert entry.get("doi") == record.doi
            assert entry.get("language") == ("; ".join(record.languages) or None)
            mesh = [h.descriptor for h in record.mesh_headings]
            assert entry.get("keywords", [])[:len(mesh) + len(record.keywords)] == mesh + record.keywords
            assert entry["urls"] == [f"https://pubmed.ncbi.nlm.nih.gov/{record.pmid}/"]
        else:
            assert entry["type_of_reference"] == "ELEC"
            assert entry["accession_number"] == record.nct_id
            assert entry["urls"] == [f"https://clinicaltrials.gov/study/{record.nct_id}"]
            assert entry["abstract"] == " ".join(record.brief_summary.split())
            assert entry["name_of_database"] == "ClinicalTrials.gov"
    nejm = parsed[0]
    assert (nejm["volume"], nejm["number"], nejm["start_page"], nejm["end_page"]) == ("367", "2", "107", "14")
    assert "oncolit:braf" in nejm["keywords"] and nejm["notes"] == ["pivotal trial"]
    assert parsed[3]["title"] == "<script>alert(1)</script> Trial"


def test_medline_round_trip_with_nbib(records) -> None:
    text, skipped = to_medline(records, {records[0].record_id: {"notes": ["ada 2026-12-01: pivotal\ntrial"]}})
    assert "\nGN  - ada 2026-12-01: pivotal trial\n" in text, "librarian notes go out as MEDLINE general notes"
    assert skipped == ["ctgov:NCT02576665"], "MEDLINE holds PubMed records only"
    assert max(len(line) for line in text.splitlines() if " " in line.strip()) <= 120
    parsed = nbib.read(text)
    articles = [r for r in records if isinstance(r, Article)]
    assert len(parsed) == len(articles)
    for record, ref in zip(articles, parsed):
        assert ref["pubmed_id"] == int(record.pmid)
        assert ref["title"] == " ".join(record.title.split())
        assert ref.get("abstract", "") == " ".join(record.abstract_text.split())
        people = [a for a in record.authors if not a.collective_name and a.last_name]
        assert [a["author"] for a in ref.get("authors", [])] == [
            f"{a.last_name}, {a.fore_name}" if a.fore_name else a.last_name for a in people]
        collective = [a.collective_name for a in record.authors if a.collective_name]
        assert ref.get("corporate_author") == (collective[-1] if collective else None)
        assert _as_list(ref.get("language")) == record.languages[-1:] or ref.get("language") in record.languages
        assert ref.get("doi") == record.doi
        assert ref.get("publication_types", []) == record.publication_types
        assert [d["descriptor"] for d in ref.get("descriptors", [])] == [
            h.descriptor for h in record.mesh_headings for _ in (h.qualifiers or [None])]
        assert ref.get("keywords", []) == record.keywords
        assert ref.get("journal") == record.journal.title
    nejm = parsed[0]
    assert (nejm["journal_volume"], nejm["journal_issue"], nejm["pages"]) == ("367", "2", "107-14")
    assert nejm["electronic_issn"] == "1533-4406" and nejm["linking_issn"] == "0028-4793"
    assert nejm["publication_date"] == "2012 Jul 12"
    assert any(d["major"] for d in nejm["descriptors"])
    assert parsed[1]["publication_date"] == "1998 Dec-1999 Jan"


def test_csv_has_one_row_per_record_and_defuses_formulas(records) -> None:
    hostile = Article(pmid="5", title="=HYPERLINK(\"http://evil\")", abstract=[])
    text = to_csv([*records, hostile], {records[0].record_id: {"notes": ["ada 2026-12-01: check OS", "dose?"]}})
    assert text.startswith(CSV_BOM) and text.count(CSV_BOM) == 1, "one BOM first: Excel then reads UTF-8"
    rows = list(csv.DictReader(io.StringIO(text.encode("utf-8").decode("utf-8-sig"))))
    assert list(rows[0]) == CSV_COLUMNS
    assert [r["record_id"] for r in rows] == [r.record_id for r in records] + ["pubmed:5"]
    assert rows[0]["doi"] == "10.1056/NEJMoa1203421" and rows[0]["journal"] == "The New England journal of medicine"
    assert rows[-1]["title"].startswith("'=")
    assert rows[-2]["trial_status"] == "TERMINATED"
    assert rows[0]["notes"] == "ada 2026-12-01: check OS | dose?" and rows[1]["notes"] == ""


def test_id_lists_accept_what_librarians_paste() -> None:
    parsed = parse_id_list("pmid\n22663011, PMID: 1;NCT02576665\tctgov:nct01245062 pubmed:7 # note\n22663011 junk")
    assert parsed.ids == ["pubmed:22663011", "pubmed:1", "ctgov:NCT02576665", "ctgov:NCT01245062", "pubmed:7"]
    assert parsed.invalid == ["junk"]


# ------------------------------------------------------------------------------------------------ BibTeX, CSL-JSON

HOSTILE_BIB = Article(pmid="6", title="50% of {unbalanced } cases & #1 \\end{document} }\n@misc{x, title={y}}",
                      abstract=[])
BIB_FIELD = re.compile(r"  ([a-z]+) = \{(.*)\}")


def _balanced(value: str) -> bool:
    depth = 0
    for ch in value:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def _bib_entries(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """A strict reading of what `to_bibtex` promises: `@type{key,` then one `  name = {value}` line per
    field (braces balanced, LaTeX specials escaped), then `}`; nothing else anywhere."""
    entries = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        head = re.fullmatch(r"@(article|book|misc)\{([A-Za-z0-9:_-]+),", lines[0])
        assert head and lines[-1] == "}", block
        fields: dict[str, str] = {}
        for i, line in enumerate(lines[1:-1]):
            last = i == len(lines) - 3
            match = BIB_FIELD.fullmatch(line if last else line.removesuffix(","))
            assert match and (last or line.endswith(",")), line
            name, value = match.groups()
            assert name not in fields and _balanced(value), line
            assert not re.search(r"(?<!\\)[%&#$_]", value), f"unescaped LaTeX special in {line!r}"
            fields[name] = value
        entries.append((head.group(1), head.group(2), fields))
    return entries


def test_bibtex_is_strict_and_carries_notes_and_tags(records) -> None:
    extras = {records[0].record_id: {"tags": ["braf"], "notes": ["ada 2026-12-01: pivotal\ntrial 100%"]}}
    text = to_bibtex([*records, HOSTILE_BIB], extras)
    entries = _bib_entries(text)
    assert len(entries) == len(records) + 1
    assert len({key for _, key, _ in entries}) == len(entries), "cite keys are unique"
    kinds = [kind for kind, _, _ in entries]
    assert kinds[0] == "article" and kinds[-2] == "misc" and "book" in kinds
    _, key, nejm = entries[0]
    assert key == "Flaherty2012-22663011"
    assert nejm["title"].startswith("{Improved survival with MEK inhibition")
    assert nejm["author"].startswith("Flaherty, Keith T and ")
    assert (nejm["journal"], nejm["year"], nejm["volume"], nejm["number"], nejm["pages"]) == (
        "The New England journal of medicine", "2012", "367", "2", "107--114")
    assert (nejm["doi"], nejm["pmid"]) == ("10.1056/NEJMoa1203421", "22663011")
    assert nejm["note"] == r"ada 2026-12-01: pivotal trial 100\%" and "oncolit:braf" in nejm["keywords"]
    assert entries[-2][1] == "NCT02576665" and entries[-2][2]["number"] == "NCT02576665"
    assert entries[-1][2]["title"] == ("{50\\% of \\textbraceleft{}unbalanced \\textbraceright{} cases \\& \\#1 "
                                       "\\textbackslash{}end\\textbraceleft{}document\\textbraceright{} "
                                       "\\textbraceright{} @misc\\textbraceleft{}x, title=\\textbraceleft{}y"
                                       "\\textbraceright{}\\textbraceright{}}")


def test_bibtex_parses_with_bibtexparser(records) -> None:
    import bibtexparser  # in the [test] extra: a missing install must fail here, not skip
    library = bibtexparser.parse_string(to_bibtex([*records, HOSTILE_BIB]))
    assert not library.failed_blocks and len(library.entries) == len(records) + 1
    assert [e.key for e in library.entries] == [key for _, key, _ in _bib_entries(to_bibtex([*records, HOSTILE_BIB]))]
    assert library.entries[0]["doi"] == "10.1056/NEJMoa1203421"
    assert library.entries[-1].entry_type == "article" and "@misc" in library.entries[-1]["title"]


def test_csl_json_has_what_citeproc_needs(records) -> None:
    extras = {records[0].record_id: {"tags": ["braf"], "notes": ["ada 2026-12-01: pivotal"]}}
    items = json.loads(to_csl_json(records, extras))
    assert [i["id"] for i in items] == [r.record_id for r in records]
    for record, item in zip(records, items):
        assert item["title"] == " ".join(record.title.split())
        assert item["type"] in {"article-journal", "book", "webpage"} and item["URL"].startswith("https://")
        assert all(set(a) <= {"family", "given", "literal"} and a for a in item.get("author", []))
        if "issued" in item:
            parts = item["issued"].get("date-parts")
            assert parts is None or (len(parts) == 1 and all(isinstance(p, int) for p in parts[0]))
        if isinstance(record, Article):
            assert item["PMID"] == record.pmid and item.get("DOI") == record.doi
    nejm = items[0]
    assert {"id", "type", "title", "author", "issued", "DOI", "PMID"} <= set(nejm)
    assert nejm["type"] == "article-journal" and nejm["issued"] == {"date-parts": [[2012, 7, 12]]}
    assert nejm["author"][0] == {"family": "Flaherty", "given": "Keith T"} and nejm["page"] == "107-114"
    assert nejm["note"] == "ada 2026-12-01: pivotal" and "oncolit:braf" in nejm["keyword"]
    trial = items[-1]
    assert trial["type"] == "webpage" and trial["number"] == "NCT02576665" and "TERMINATED" in trial["note"]
