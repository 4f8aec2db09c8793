"""Curated sets for citation managers that speak BibTeX (LaTeX, JabRef, Overleaf) or CSL-JSON (Zotero,
Pandoc, citeproc), beside the RIS, MEDLINE and CSV writers in `exports`.

Both carry what the librarian added, not only what the source said: notes go into `note` (BibTeX) /
`note` (CSL), tags into `keywords` / `keyword` as `oncolit:TAG`, like the RIS and MEDLINE writers do.
Record text is untrusted and goes into a format with its own syntax, so every BibTeX value is escaped
to plain text with balanced braces (a title cannot close its field or open a new entry), and CSL-JSON
is written by `json.dumps`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from ingest.curation.exports import url_of
from ingest.records import Article, Trial

Citable = Article | Trial  # what the catalog holds

# LaTeX's special characters as commands: braces become commands too, so every value has balanced braces
# whatever the record says (BibTeX counts braces even after a backslash).
_LATEX = {"\\": r"\textbackslash{}", "{": r"\textbraceleft{}", "}": r"\textbraceright{}", "%": r"\%",
          "&": r"\&", "#": r"\#", "$": r"\$", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_RE = re.compile("|".join(re.escape(c) for c in _LATEX))


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def tex(text: str | None) -> str:
    """Plain text as a BibTeX field body: one line, LaTeX specials escaped, braces balanced."""
    return _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], one_line(text))


def page_range(pagination: str | None) -> tuple[str | None, str | None]:
    """(first, last) page; MEDLINE's shortened last page ("107-14") written out in full ("114")."""
    if not pagination:
        return None, None
    first, sep, last = (p.strip() for p in pagination.partition("-"))
    if not sep or not last:
        return first or None, None
    if first.isdigit() and last.isdigit() and len(last) < len(first):
        last = first[:len(first) - len(last)] + last
    return first or None, last


def _ascii_word(text: str) -> str:
    return re.sub(r"[^A-Za-z]", "", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode())


def cite_key(record: Citable) -> str:
    """`Flaherty2012-22663011`, `NCT02576665`: readable, and unique because the record's own id ends it."""
    if isinstance(record, Trial):
        return record.nct_id
    assert isinstance(record, Article)
    first = next((a for a in record.authors if a.last_name or a.collective_name), None)
    name = _ascii_word((first.last_name or first.collective_name or "") if first else "")[:20]
    return f"{name}{record.pub_date.year or ''}-{record.pmid}" if name else f"pmid{record.pmid}"


# ------------------------------------------------------------------------------------------------ BibTeX

def _bib_author(author: Any) -> str | None:
    if author.collective_name:  # braces: a group is one name, not "Family, Given" or "A and B"
        return "{" + tex(author.collective_name) + "}"
    if not author.last_name:
        return None
    last = tex(author.last_name)
    if " and " in f" {last} ":
        last = "{" + last + "}"
    return f"{last}, {tex(author.fore_name)}" if author.fore_name else last


def _bib_fields(record: Citable, extra: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    fields: list[tuple[str, str]] = []

    def add(name: str, value: Any, *, raw: bool = False) -> None:
        text = (value if raw else tex(str(value))) if value not in (None, "") else ""
        if text:
            fields.append((name, text))

    tags = [f"oncolit:{t}" for t in extra.get("tags", [])]
    if isinstance(record, Trial):
        entry_type = "misc"
        add("title", "{" + tex(record.title) + "}", raw=True)
        if record.lead_sponsor:
            add("author", "{" + tex(record.lead_sponsor.name) + "}", raw=True)
        posted = record.first_posted.as_date() if record.first_posted else None
        if posted:
            add("year", posted.year)
            add("date", posted.isoformat())
        add("howpublished", "ClinicalTrials.gov")
        add("number", record.nct_id)
        add("abstract", record.brief_summary)
        add("keywords", ", ".join([*record.conditions, *record.keywords, *tags]))
        status = ", ".join(p for p in [record.overall_status, *record.design.phases] if p)
        add("note", "; ".join(filter(None, [f"Trial status: {status}" if status else "",
                                            *map(one_line, extra.get("notes", []))])))
    else:
        assert isinstance(record, Article)
        j = record.journal
        entry_type = "book" if record.is_book else "article"
        add("title", "{" + tex(record.title) + "}", raw=True)  # double braces: keep the title's capitals
        add("author", " and ".join(filter(None, map(_bib_author, record.authors))), raw=True)
        if record.is_book:
            add("publisher", record.publisher)
            add("booktitle", record.book_title)
        else:
            add("journal", j.title)
            add("shortjournal", j.iso_abbreviation or j.medline_ta)
        add("year", record.pub_date.year)
        add("volume", j.volume)
        add("number", j.issue)
        first, last = page_range(record.pagination)
        add("pages", f"{first}--{last}" if first and last else first)
        add("issn", j.issn or j.issn_linking)
        add("doi", record.doi)
        add("pmid", record.pmid)
        add("pmcid", record.pmcid)
        add("language", ", ".join(record.languages))
        add("abstract", record.abstract_text)
        add("keywords", ", ".join([*(h.descriptor for h in record.mesh_headings), *record.keywords, *tags]))
        add("note", "; ".join(filter(None, map(one_line, extra.get("notes", [])))))
    add("url", url_of(record))
    return entry_type, fields


def to_bibtex(records: Iterable[Citable], extras: dict[str, dict[str, Any]] | None = None) -> str:
    """One `@article`/`@book`/`@misc` entry per record, keyed by `cite_key`, values in braces."""
    out: list[str] = []
    for record in records:
        entry_type, fields = _bib_fields(record, (extras or {}).get(record.record_id, {}))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        out.append(f"@{entry_type}{{{cite_key(record)},\n{body}\n}}\n")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ CSL-JSON

def _csl_author(author: Any) -> dict[str, str] | None:
    if author.collective_name:
        return {"literal": one_line(author.collective_name)}
    if not author.last_name:
        return None
    name = {"family": one_line(author.last_name)}
    if author.fore_name:
        name["given"] = one_line(author.fore_name)
    return name


def csl_item(record: Citable, extra: dict[str, Any]) -> dict[str, Any]:
    """One CSL-JSON item (the citeproc data model): `id` is the OncoLit record id."""
    tags = [f"oncolit:{t}" for t in extra.get("tags", [])]
    notes = [one_line(n) for n in extra.get("notes", []) if one_line(n)]
    item: dict[str, Any] = {"id": record.record_id, "citation-key": cite_key(record), "URL": url_of(record)}
    if isinstance(record, Trial):
        posted = record.first_posted.as_date() if record.first_posted else None
        status = ", ".join(p for p in [record.overall_status, *record.design.phases] if p)
        item |= {"type": "webpage", "title": one_line(record.title),
                 "author": [{"literal": one_line(record.lead_sponsor.name)}] if record.lead_sponsor else [],
                 "container-title": "ClinicalTrials.gov", "number": record.nct_id,
                 "abstract": one_line(record.brief_summary),
                 "keyword": ", ".join([*record.conditions, *record.keywords, *tags]),
                 "note": "; ".join([*([f"Trial status: {status}"] if status else []), *notes])}
        if posted:
            item["issued"] = {"date-parts": [[posted.year, posted.month, posted.day]]}
    else:
        assert isinstance(record, Article)
        j = record.journal
        pub = record.pub_date
        first, last = page_range(record.pagination)
        item |= {"type": "book" if record.is_book else "article-journal", "title": one_line(record.title),
                 "author": [a for a in map(_csl_author, record.authors) if a],
                 "container-title": one_line(record.book_title if record.is_book else j.title),
                 "container-title-short": one_line(j.iso_abbreviation or j.medline_ta),
                 "volume": j.volume, "issue": j.issue, "page": f"{first}-{last}" if first and last else first,
                 "ISSN": j.issn or j.issn_linking, "DOI": record.doi, "PMID": record.pmid, "PMCID": record.pmcid,
                 "publisher": record.publisher, "language": ", ".join(record.languages),
                 "abstract": one_line(record.abstract_text),
                 "keyword": ", ".join([*(h.descriptor for h in record.mesh_headings), *record.keywords, *tags]),
                 "note": "; ".join(notes)}
        if pub.year:
            item["issued"] = {"date-parts": [[pub.year, *([pub.month] if pub.month else []),
                                              *([pub.day] if pub.month and pub.day else [])]]}
        elif pub.medline_date:
            item["issued"] = {"literal": pub.medline_date}
    return {k: v for k, v in item.items() if v not in (None, "", [])}


def to_csl_json(records: Iterable[Citable], extras: dict[str, dict[str, Any]] | None = None) -> str:
    """A CSL-JSON array (what Zotero imports and `pandoc --citeproc` reads)."""
    items = [csl_item(r, (extras or {}).get(r.record_id, {})) for r in records]
    return json.dumps(items, ensure_ascii=False, indent=2) + "\n"
