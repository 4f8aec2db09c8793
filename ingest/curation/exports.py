"""Curated sets out (RIS, PubMed MEDLINE `.nbib`, CSV; BibTeX and CSL-JSON in `exports_cite`) and id lists in.

RIS and MEDLINE are written here, one value per tag line, whitespace collapsed, so that reference
managers (Zotero, EndNote) and third-party parsers read back exactly what was written. MEDLINE is
PubMed's format, so `.nbib` holds articles only; trials go to RIS (as web pages, TY ELEC) and CSV.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ingest.curation.rules import CurationError, normalise_record_id

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
FORMATS = ("ris", "nbib", "csv", "bibtex", "csljson")
MEDIA_TYPES = {"ris": "application/x-research-info-systems", "nbib": "application/nbib",
               "csv": "text/csv", "bibtex": "application/x-bibtex", "csljson": "application/vnd.citationstyles.csl+json"}
SUFFIXES = {"ris": ".ris", "nbib": ".nbib", "csv": ".csv", "bibtex": ".bib", "csljson": ".json"}
# Excel reads a CSV file as the machine's legacy code page unless it starts with a UTF-8 byte order mark.
CSV_BOM = "\ufeff"
CSV_COLUMNS = ["record_id", "type", "pmid", "nct_id", "title", "authors", "journal", "year", "published",
               "volume", "issue", "pages", "doi", "publication_types", "trial_status", "phases", "url",
               "decision", "tags", "pinned_topics", "abstract", "notes"]


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def url_of(record: BaseModel) -> str:
    if getattr(record, "kind", "") == "trial":
        return f"https://clinicaltrials.gov/study/{record.nct_id}"  # type: ignore[attr-defined]
    return f"https://pubmed.ncbi.nlm.nih.gov/{record.pmid}/"  # type: ignore[attr-defined]


def _pages(pagination: str | None) -> tuple[str | None, str | None]:
    if not pagination:
        return None, None
    first, sep, last = pagination.partition("-")
    return first.strip() or None, (last.strip() or None) if sep else None


def _author_ris(author: Any) -> str | None:
    if author.collective_name:
        return one_line(author.collective_name)
    if author.last_name:
        return one_line(f"{author.last_name}, {author.fore_name}" if author.fore_name else author.last_name)
    return None


# ------------------------------------------------------------------------------------------------ RIS

def _ris_lines(record: BaseModel, extra: dict[str, Any]) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []

    def add(tag: str, value: Any) -> None:
        text = one_line(str(value)) if value is not None else ""
        if text:
            lines.append((tag, text))

    if getattr(record, "kind", "") == "trial":
        t = record
        add("TY", "ELEC")
        add("TI", t.title)  # type: ignore[attr-defined]
        if t.official_title and t.official_title != t.title:  # type: ignore[attr-defined]
            add("ST", t.brief_title)  # type: ignore[attr-defined]
        if t.lead_sponsor:  # type: ignore[attr-defined]
            add("AU", t.lead_sponsor.name)  # type: ignore[attr-defined]
        posted = t.first_posted.as_date() if t.first_posted else None  # type: ignore[attr-defined]
        if posted:
            add("PY", posted.year)
            add("DA", posted.strftime("%Y/%m/%d"))
        add("AB", t.brief_summary)  # type: ignore[attr-defined]
        for kw in [*t.conditions, *t.keywords]:  # type: ignore[attr-defined]
            add("KW", kw)
        add("AN", t.nct_id)  # type: ignore[attr-defined]
        add("DB", "ClinicalTrials.gov")
        add("PB", "National Library of Medicine (US)")
        status = ", ".join(p for p in [t.overall_status, *t.design.phases] if p)  # type: ignore[attr-defined]
        add("M3", status)
    else:
        a = record
        j = a.journal  # type: ignore[attr-defined]
        add("TY", "BOOK" if a.is_book else "JOUR")  # type: ignore[attr-defined]
        add("TI", a.title)  # type: ignore[attr-defined]
        for author in a.authors:  # type: ignore[attr-defined]
            add("AU", _author_ris(author))
        pub = a.pub_date  # type: ignore[attr-defined]
        if pub.year:
            add("PY", pub.year)
            add("DA", "/".join([f"{pub.year:04d}", f"{pub.month:02d}" if pub.month else "",
                                f"{pub.day:02d}" if pub.day else "", ""]))
        add("T2", j.title or a.book_title)  # type: ignore[attr-defined]
        add("J2", j.iso_abbreviation or j.medline_ta)
        add("VL", j.volume)
        add("IS", j.issue)
        first, last = _pages(a.pagination)  # type: ignore[attr-defined]
        add("SP", first)
        add("EP", last)
        add("SN", j.issn or j.issn_linking)
        add("AB", a.abstract_text)  # type: ignore[attr-defined]
        for kw in [*(h.descriptor for h in a.mesh_headings), *a.keywords]:  # type: ignore[attr-defined]
            add("KW", kw)
        add("DO", a.doi)  # type: ignore[attr-defined]
        add("AN", a.pmid)  # type: ignore[attr-defined]
        add("DB", "PubMed")
        add("PB", a.publisher)  # type: ignore[attr-defined]
        add("LA", "; ".join(a.languages))  # type: ignore[attr-defined]  # one LA per record in RIS
        add("M3", "; ".join(a.publication_types))  # type: ignore[attr-defined]
    add("UR", url_of(record))
    add("ID", record.record_id)
    for tag in extra.get("tags", []):
        add("KW", f"oncolit:{tag}")
    for note in extra.get("notes", []):
        add("N1", note)
    lines.append(("ER", ""))
    return lines


def to_ris(records: Iterable[BaseModel], extras: dict[str, dict[str, Any]] | None = None) -> str:
    """RIS with CRLF line ends (what EndNote writes; Zotero and rispy read it too)."""
    out = []
    for record in records:
        for tag, value in _ris_lines(record, (extras or {}).get(record.record_id, {})):
            out.append(f"{tag}  - {value}".rstrip() if tag == "ER" else f"{tag}  - {value}")
        out.append("")
    return "\r\n".join(out)


# ------------------------------------------------------------------------------------------------ MEDLINE

def _wrap(tag: str, value: str, width: int = 80) -> list[str]:
    """`TAG - value` with continuation lines indented six spaces, broken at spaces (as PubMed does)."""
    lines: list[str] = []
    current = f"{tag:<4}- "
    for i, word in enumerate(one_line(value).split(" ")):
        if i == 0:
            current += word
        elif len(current) + 1 + len(word) > width:
            lines.append(current)
            current = " " * 6 + word
        else:
            current += " " + word
    lines.append(current)
    return lines


def _dp(pub: Any) -> str | None:
    if pub.medline_date:  # PubMed's own free-text date ("1998 Dec-1999 Jan") is what DP holds
        return pub.medline_date
    if pub.year:
        parts = [str(pub.year)]
        if pub.month:
            parts.append(MONTHS[pub.month - 1])
            if pub.day:
                parts.append(f"{pub.day:02d}")
        return " ".join(parts)
    return pub.medline_date


def _initials(author: Any) -> str:
    if author.initials:
        return author.initials
    return "".join(p[0] for p in (author.fore_name or "").replace("-", " ").split() if p)


def _medline_fields(a: Any) -> list[tuple[str, str]]:
    j = a.journal
    f: list[tuple[str, str]] = [("PMID", a.pmid)]
    if a.citation_status:
        f.append(("STAT", a.citation_status))
    for issn, kind in ((j.issn, j.issn_type or "Print"), (j.issn_linking, "Linking")):
        if issn:
            f.append(("IS", f"{issn} ({kind})"))
    f += [("VI", j.volume), ("IP", j.issue), ("DP", _dp(a.pub_date)), ("TI", a.title),
          ("PG", a.pagination)]
    if a.doi:
        f.append(("LID", f"{a.doi} [doi]"))
    f.append(("AB", a.abstract_text))
    f.append(("CI", a.abstract_copyright))
    for author in a.authors:
        if author.collective_name:
            f.append(("CN", author.collective_name))
            continue
        if not author.last_name:
            continue
        f.append(("FAU", f"{author.last_name}, {author.fore_name}" if author.fore_name else author.last_name))
        f.append(("AU", f"{author.last_name} {_initials(author)}".strip()))
        for aff in author.affiliations:
            f.append(("AD", aff))
    f += [("LA", lang) for lang in a.languages]
    for bank in a.databanks:
        f += [("SI", f"{bank.name}/{acc}") for acc in bank.accession_numbers]
    f += [("PT", pt) for pt in a.publication_types]
    for d in a.article_dates[:1]:
        if d.year and d.month and d.day:
            f.append(("DEP", f"{d.year:04d}{d.month:02d}{d.day:02d}"))
    f += [("PL", j.country), ("TA", j.medline_ta or j.iso_abbreviation), ("JT", j.title), ("JID", j.nlm_unique_id)]
    for h in a.mesh_headings:
        head = ("*" if h.major_topic else "") + h.descriptor
        if h.qualifiers:
            f += [("MH", f"{head}/{'*' if q.major_topic else ''}{q.name}") for q in h.qualifiers]
        else:
            f.append(("MH", head))
    f += [("OT", kw) for kw in a.keywords]
    if a.doi:
        f.append(("AID", f"{a.doi} [doi]"))
    if a.pii:
        f.append(("AID", f"{a.pii} [pii]"))
    if a.pmcid and re.fullmatch(r"PMC\d+", a.pmcid):
        f.append(("PMC", a.pmcid))
    f.append(("PST", a.publication_status))
    return [(tag, one_line(str(v))) for tag, v in f if v is not None and one_line(str(v))]


def to_medline(records: Iterable[BaseModel], extras: dict[str, dict[str, Any]] | None = None
               ) -> tuple[str, list[str]]:
    """PubMed MEDLINE text (`.nbib`) for the articles; returns (text, ids left out: trials)."""
    out: list[str] = []
    skipped: list[str] = []
    for record in records:
        rid = record.record_id
        if getattr(record, "kind", "") != "article":
            skipped.append(rid)
            continue
        fields = _medline_fields(record)
        extra = (extras or {}).get(rid, {})
        fields += [("OT", f"oncolit:{tag}") for tag in extra.get("tags", [])]
        fields += [("GN", one_line(note)) for note in extra.get("notes", []) if one_line(note)]
        for tag, value in fields:
            out.extend(_wrap(tag, value))
        out.append("")
    return "\n".join(out), skipped


# ------------------------------------------------------------------------------------------------ CSV

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spreadsheets run cells that start like a formula; record text is data, never instructions.
    return f"'{text}" if text.startswith(_FORMULA) else text


def csv_row(record: BaseModel, extra: dict[str, Any]) -> dict[str, str]:
    kind = getattr(record, "kind", "")
    row: dict[str, Any] = {"record_id": record.record_id, "type": kind, "url": url_of(record),
                           "decision": extra.get("decision", ""), "tags": "; ".join(extra.get("tags", [])),
                           "pinned_topics": "; ".join(extra.get("topics", [])),
                           "notes": " | ".join(one_line(n) for n in extra.get("notes", []) if one_line(n))}
    if kind == "trial":
        t = record
        posted = t.first_posted.as_date() if t.first_posted else None  # type: ignore[attr-defined]
        row |= {"nct_id": t.nct_id, "title": t.title, "year": posted.year if posted else "",  # type: ignore[attr-defined]
                "published": posted.isoformat() if posted else "",
                "authors": t.lead_sponsor.name if t.lead_sponsor else "",  # type: ignore[attr-defined]
                "trial_status": t.overall_status, "phases": "; ".join(t.design.phases),  # type: ignore[attr-defined]
                "abstract": one_line(t.brief_summary)}  # type: ignore[attr-defined]
    else:
        a = record
        j = a.journal  # type: ignore[attr-defined]
        published = a.published  # type: ignore[attr-defined]
        row |= {"pmid": a.pmid, "title": a.title, "authors": "; ".join(  # type: ignore[attr-defined]
                    filter(None, (_author_ris(x) for x in a.authors))),  # type: ignore[attr-defined]
                "journal": j.title, "year": a.pub_date.year or "",  # type: ignore[attr-defined]
                "published": published.isoformat() if published else "", "volume": j.volume,
                "issue": j.issue, "pages": a.pagination, "doi": a.doi,  # type: ignore[attr-defined]
                "publication_types": "; ".join(a.publication_types),  # type: ignore[attr-defined]
                "abstract": one_line(a.abstract_text)}  # type: ignore[attr-defined]
    return {k: _cell(one_line(str(row[k])) if row.get(k) not in (None, "") else "") for k in CSV_COLUMNS}


def to_csv(records: Iterable[BaseModel], extras: dict[str, dict[str, Any]] | None = None) -> str:
    """CRLF rows after a UTF-8 byte order mark (`CSV_BOM`), so Excel shows accents and Greek letters right;
    Python reads it back with `encoding="utf-8-sig"`."""
    buf = io.StringIO()
    buf.write(CSV_BOM)
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for record in records:
        writer.writerow(csv_row(record, (extras or {}).get(record.record_id, {})))
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ import

@dataclass
class ParsedIds:
    ids: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def parse_id_list(text: str) -> ParsedIds:
    """PMIDs and NCT ids separated by spaces, commas, semicolons or lines; `#` starts a comment.
    A header cell such as `pmid` or `record_id` is skipped."""
    out = ParsedIds()
    seen: set[str] = set()
    for line in text.splitlines():
        line = re.sub(r"(?i)\b(pmid|pubmed|ctgov)\s*:\s*", r"\1:", line.split("#", 1)[0])
        for token in re.split(r"[\s,;\t]+", line):
            token = token.strip().strip('"\'')
            if not token or token.lower() in {"pmid", "nct", "nct_id", "record_id", "id", "ids"}:
                continue
            try:
                rid = normalise_record_id(token)
            except CurationError:
                out.invalid.append(token)
                continue
            if rid not in seen:
                seen.add(rid)
                out.ids.append(rid)
    return out


def render(fmt: str, records: Sequence[BaseModel], extras: dict[str, dict[str, Any]]) -> tuple[str, list[str]]:
    """(text, ids left out) in one of FORMATS."""
    if fmt == "ris":
        return to_ris(records, extras), []
    if fmt == "nbib":
        return to_medline(records, extras)
    if fmt == "csv":
        return to_csv(records, extras), []
    if fmt in ("bibtex", "csljson"):
        from ingest.curation.exports_cite import to_bibtex, to_csl_json  # it builds on this module
        from ingest.records import Article, Trial

        citable = [r for r in records if isinstance(r, (Article, Trial))]  # what the catalog returns
        return (to_bibtex if fmt == "bibtex" else to_csl_json)(citable, extras), []
    raise CurationError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
