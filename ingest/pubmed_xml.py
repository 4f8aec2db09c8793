"""PubMed XML -> `Article` / `Deletion` records, and E-utilities esearch XML -> `ESearchResult`.

Everything PubMed sends us (efetch responses, baseline and update files) arrives here as untrusted
bytes, so reading is hardened before it is clever:

* the prolog is checked *before* lxml sees the document: a DOCTYPE internal subset that declares
  entities (billion laughs, XXE) is refused, and so is any root element other than the expected one
  (NCBI answers some failures with HTTP 200 and an HTML page);
* lxml runs with entity resolution, DTD loading and network access off and its default size limits on
  (`huge_tree=False`), so the standard `<!DOCTYPE PubmedArticleSet PUBLIC ... "https://dtd.nlm...">`
  line is accepted and never fetched;
* input is bounded (`max_bytes`; decompressed bytes for gzip files);
* every failure surfaces as `MalformedPayload` naming the line and column lxml stopped at.

One streaming core (`_iter_items`, lxml iterparse with elements cleared as they are consumed) serves
both the in-memory entry point and the file entry point, so both give byte-identical items.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from os import PathLike
from typing import IO

from lxml import etree

from ingest.errors import MalformedPayload
from ingest.records.article import (
    AbstractSection,
    Article,
    Author,
    Chemical,
    CommentCorrection,
    DataBank,
    Deletion,
    Grant,
    Journal,
    MeshHeading,
    MeshQualifier,
    Unreadable,
)
from ingest.records.common import PMID_RE, PartialDate, parse_month
from ingest.source import ParsedItem

__all__ = ["ESearchResult", "RAW_FORMAT", "SAFE_PARSER_OPTIONS", "iter_pubmed_file", "parse_esearch",
           "parse_pubmed_xml"]

RAW_FORMAT = "pubmed-xml"
MiB = 1024 * 1024
DEFAULT_MAX_BYTES = 512 * MiB          # one efetch response or one in-memory file
DEFAULT_MAX_FILE_BYTES = 4096 * MiB    # a decompressed baseline file (~30k records is ~150 MiB today)
DEFAULT_MAX_ESEARCH_BYTES = 64 * MiB   # esearch answers are ids only; retmax caps at 10k (100k for JSON)
_PROLOG_LIMIT = 64 * 1024              # PubMed's prolog is ~200 bytes; anything longer is not PubMed
_READ_CHUNK = 256 * 1024
_GZIP_MAGIC = b"\x1f\x8b"

_ARTICLE_SET_ROOTS = frozenset({"PubmedArticleSet", "PubmedBookArticleSet"})
_ITEM_TAGS = ("PubmedArticle", "PubmedBookArticle", "DeleteCitation")

# Options for every lxml parser that reads outside input: nothing may reach outside the document,
# and libxml2's default limits (text node 10 MB, depth 256) stay on.
SAFE_PARSER_OPTIONS: dict[str, bool] = dict(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
    huge_tree=False, recover=False)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------

def parse_pubmed_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> list[ParsedItem]:
    """Parse a `PubmedArticleSet` (efetch response or baseline/update file content).

    Returns one item per PubmedArticle, PubmedBookArticle and per PMID in DeleteCitation, in
    document order. All or nothing: any defect raises `MalformedPayload` and returns no items.
    """
    if len(data) > max_bytes:
        raise MalformedPayload(
            f"PubMed XML payload is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    _check_prolog(data[:_PROLOG_LIMIT], _ARTICLE_SET_ROOTS, "PubMed XML payload")
    return list(_iter_items(io.BytesIO(data), "PubMed XML payload"))


def iter_pubmed_file(path: str | PathLike[str], *,
                     max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[ParsedItem]:
    """Stream items from a plain or gzip-compressed PubMed XML file (gzip detected by magic bytes).

    Memory stays flat on 200k-record baseline files: each element is cleared once turned into a
    record. Items are yielded as they are read, so a defect late in the file raises
    `MalformedPayload` after earlier items were yielded: treat the whole file as failed then.
    """
    name = str(path)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        magic = raw.read(len(_GZIP_MAGIC))
        raw.seek(0)
        stream: IO[bytes] = raw
        if magic == _GZIP_MAGIC:
            stream = stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb"))
        reader = _BoundedReader(stream, max_bytes, name)
        _check_prolog(reader.peek_head(_PROLOG_LIMIT), _ARTICLE_SET_ROOTS, name)
        yield from _iter_items(reader, name)


@dataclass
class ESearchResult:
    """An E-utilities esearch answer. `errors`/`warnings` hold NCBI's non-fatal notes, e.g.
    "PhraseNotFound: abcXYZ" on a zero-hit search; a fatal <ERROR> raises instead."""

    count: int
    ret_max: int
    ret_start: int
    ids: list[str] = field(default_factory=list)
    webenv: str | None = None
    query_key: str | None = None
    query_translation: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_esearch(data: bytes, *, max_bytes: int = DEFAULT_MAX_ESEARCH_BYTES) -> ESearchResult:
    """Parse esearch XML. NCBI reports some failures with HTTP 200 and an `<ERROR>` element or an
    HTML page; both raise `MalformedPayload` so a failed search is never read as "no hits"."""
    where = "esearch response"
    if len(data) > max_bytes:
        raise MalformedPayload(f"{where} is {len(data):,} bytes, over the {max_bytes:,}-byte limit")
    _check_prolog(data[:_PROLOG_LIMIT], frozenset({"eSearchResult"}), where)
    try:
        root = etree.fromstring(data, etree.XMLParser(**SAFE_PARSER_OPTIONS))
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, where) from exc
    _check_no_entity_declarations(root.getroottree(), where)
    fatal = root.find("ERROR")
    if fatal is not None:
        raise MalformedPayload(f"NCBI esearch reported an error: {_norm(fatal) or '(no message)'}")
    count = _int_or_none(root.findtext("Count"))
    if count is None:
        raise MalformedPayload(f"{where} has no <Count>: not a search result")
    return ESearchResult(
        count=count,
        ret_max=_int_or_none(root.findtext("RetMax")) or 0,
        ret_start=_int_or_none(root.findtext("RetStart")) or 0,
        ids=[text for el in root.iterfind("IdList/Id") if (text := _leaf(el))],
        webenv=_leaf(root.find("WebEnv")),
        query_key=_leaf(root.find("QueryKey")),
        query_translation=_norm(root.find("QueryTranslation")),
        errors=_notes(root.find("ErrorList")),
        warnings=_notes(root.find("WarningList")),
    )


# --------------------------------------------------------------------------------------------------
# Hardening: size, prolog, syntax errors
# --------------------------------------------------------------------------------------------------

class _BoundedReader:
    """File-like wrapper for iterparse: counts (decompressed) bytes, refuses past `max_bytes`, and
    turns gzip/IO failures into `MalformedPayload` (lxml re-raises exceptions from `read`)."""

    def __init__(self, stream: IO[bytes], max_bytes: int, name: str) -> None:
        self._stream = stream
        self._max = max_bytes
        self._name = name
        self._seen = 0
        self._head = b""

    def peek_head(self, size: int) -> bytes:
        """Read up to `size` bytes that the next `read` calls will hand out again."""
        self._head = self._read_stream(size)
        return self._head

    def read(self, size: int = -1) -> bytes:
        if self._head:
            chunk, self._head = self._head, b""
            return chunk
        return self._read_stream(size if size and size > 0 else _READ_CHUNK)

    def _read_stream(self, size: int) -> bytes:
        try:
            chunk = self._stream.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise MalformedPayload(f"{self._name}: cannot read: {exc}") from exc
        self._seen += len(chunk)
        if self._seen > self._max:
            raise MalformedPayload(f"{self._name} is over the {self._max:,}-byte limit")
        return chunk


_WS = b" \t\r\n"
_NAME_RE = re.compile(rb"[A-Za-z_:][-A-Za-z0-9_.:]*")


def _check_prolog(head: bytes, roots: frozenset[str], where: str) -> None:
    """Walk the prolog (XML declaration, comments, PIs, DOCTYPE) up to the root start tag.

    Refuses entity declarations in a DOCTYPE internal subset, documents that do not start with XML
    (UTF-16/32, EBCDIC, HTML served as text), and a root element not in `roots`. Only the head of the
    document is needed, so this runs before any parsing, also on streamed files.
    """
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    end = len(head)
    while True:
        while pos < end and head[pos] in _WS:
            pos += 1
        if pos >= end:
            raise MalformedPayload(f"{where} is empty or ends before its root element")
        if head.startswith(b"<?", pos):
            pos = _skip_past(head, pos + 2, b"?>", where, "processing instruction")
        elif head.startswith(b"<!--", pos):
            pos = _skip_past(head, pos + 4, b"-->", where, "comment")
        elif head[pos:pos + 9].upper() == b"<!DOCTYPE":
            pos = _skip_doctype(head, pos + 9, where)
        elif head.startswith(b"<", pos) and (name := _NAME_RE.match(head, pos + 1)):
            _check_root(name.group().decode("ascii"), roots, where, head[pos:pos + 160])
            return
        else:
            raise MalformedPayload(
                f"{where} is not an XML document in UTF-8 (starts with {head[pos:pos + 20]!r})")


def _skip_past(head: bytes, pos: int, marker: bytes, where: str, what: str) -> int:
    found = head.find(marker, pos)
    if found < 0:
        raise MalformedPayload(f"{where}: unterminated {what} in the prolog (truncated or over "
                               f"{_PROLOG_LIMIT:,} bytes)")
    return found + len(marker)


def _skip_doctype(head: bytes, pos: int, where: str) -> int:
    """Skip `<!DOCTYPE ...>` (quotes respected); refuse an internal subset declaring entities."""
    end = len(head)
    while pos < end:
        char = head[pos:pos + 1]
        if char in (b'"', b"'"):
            pos = _skip_past(head, pos + 1, char, where, "DOCTYPE literal")
        elif char == b"[":
            pos = _skip_internal_subset(head, pos + 1, where)
        elif char == b">":
            return pos + 1
        else:
            pos += 1
    raise MalformedPayload(f"{where}: unterminated DOCTYPE (truncated or over {_PROLOG_LIMIT:,} bytes)")


def _skip_internal_subset(head: bytes, pos: int, where: str) -> int:
    """Skip a DOCTYPE internal subset up to its `]`. Any `<!ENTITY` (even inside a comment or a
    literal) or parameter-entity reference refuses the document: PubMed never sends either."""
    close = _find_subset_end(head, pos, where)
    subset = head[pos:close]
    if b"<!ENTITY" in subset.upper() or re.search(rb"%[A-Za-z_:]", subset):
        raise MalformedPayload(
            f"{where}: entity declarations are not allowed (the DOCTYPE internal subset declares "
            "entities: entity-expansion or external-entity payload refused before parsing)")
    return close + 1


def _find_subset_end(head: bytes, pos: int, where: str) -> int:
    end = len(head)
    while pos < end:
        if head.startswith(b"<!--", pos):
            pos = _skip_past(head, pos + 4, b"-->", where, "comment")
            continue
        char = head[pos:pos + 1]
        if char in (b'"', b"'"):
            pos = _skip_past(head, pos + 1, char, where, "DTD literal")
        elif char == b"]":
            return pos
        else:
            pos += 1
    raise MalformedPayload(
        f"{where}: unterminated DOCTYPE internal subset (truncated or over {_PROLOG_LIMIT:,} bytes)")


def _check_root(name: str, roots: frozenset[str], where: str, start: bytes) -> None:
    """Refuse an unexpected root, quoting the start of the document so the log shows what came."""
    if name in roots:
        return
    hint = " (an HTML page, probably an NCBI error page)" if name.lower() in {"html", "head", "body"} \
        else " (NCBI error answer)" if name.upper() == "ERROR" else ""
    expected = " or ".join(f"<{r}>" for r in sorted(roots))
    snippet = " ".join(start.decode("utf-8", "replace").split())
    raise MalformedPayload(f"{where}: expected root element {expected}, found <{name}>{hint}: {snippet!r}")


def _check_no_entity_declarations(tree: etree._ElementTree, where: str) -> None:
    """Second line of defence behind `_check_prolog`: ask lxml what the internal subset declared."""
    dtd = tree.docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.entities()):
        raise MalformedPayload(f"{where}: entity declarations are not allowed")


def _syntax_error(exc: etree.XMLSyntaxError, where: str) -> MalformedPayload:
    """Name what broke and where; lxml's own message repeats the position, so that is cut."""
    line, column = exc.position if exc.position else (exc.lineno, 0)
    detail = _LXML_POSITION_RE.sub("", exc.msg or "").strip() or "unknown error"
    what = ("exceeds the XML parser's safety limits (huge_tree is off)"
            if "XML_PARSE_HUGE" in detail or "limit" in detail.lower()
            else "is not well-formed XML (truncated or corrupt)")
    return MalformedPayload(f"{where} {what} at line {line}, column {column}: {detail}")


_LXML_POSITION_RE = re.compile(r",\s*line \d+, column \d+\s*$")


# --------------------------------------------------------------------------------------------------
# Streaming core
# --------------------------------------------------------------------------------------------------

def _iter_items(stream: io.BufferedIOBase | _BoundedReader, where: str) -> Iterator[ParsedItem]:
    """iterparse the set; build each item at its end tag, then free it and its earlier siblings."""
    context = etree.iterparse(stream, events=("end",), tag=_ITEM_TAGS, **SAFE_PARSER_OPTIONS)
    checked = False
    ordinal = 0
    try:
        for _event, elem in context:
            parent = elem.getparent()
            if not checked:
                _check_no_entity_declarations(elem.getroottree(), where)
                checked = True
            if parent is None or parent.getparent() is not None or parent.tag not in _ARTICLE_SET_ROOTS:
                raise MalformedPayload(f"{where}: <{elem.tag}> outside a <PubmedArticleSet> "
                                       f"(line {elem.sourceline})")
            ordinal += 1
            yield from _items_from(elem, ordinal, where)
            elem.clear(keep_tail=False)
            while elem.getprevious() is not None:
                del parent[0]
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, where) from exc
    root = context.root
    if root is None or root.tag not in _ARTICLE_SET_ROOTS:
        raise MalformedPayload(f"{where}: root element is not <PubmedArticleSet>")
    if not checked:
        _check_no_entity_declarations(root.getroottree(), where)


def _items_from(elem: etree._Element, ordinal: int, where: str) -> Iterator[ParsedItem]:
    tag = elem.tag
    if tag == "DeleteCitation":
        yield from _deletions(elem, where)
        return
    raw = _serialize(elem)
    try:
        record: Article | Unreadable = _article(elem) if tag == "PubmedArticle" else _book_article(elem)
    except _NoPmid as exc:
        record = _unreadable(elem, raw, f"{where}: <{tag}> #{ordinal} (line {elem.sourceline}) {exc}")
    except ValueError as exc:  # pydantic's ValidationError included
        record = _unreadable(elem, raw, f"{where}: <{tag}> #{ordinal} (line {elem.sourceline}) does not fit "
                                        f"the Article model: {exc}")
    yield ParsedItem(record=record, raw=raw, raw_format=RAW_FORMAT)


def _unreadable(elem: etree._Element, raw: bytes, error: str) -> Unreadable:
    """One bad article among good ones: an item for the quarantine, not a failed payload (issue 18)."""
    pmid = elem.findtext("MedlineCitation/PMID") or elem.findtext("BookDocument/PMID") or ""
    pmid = pmid if pmid.isascii() and PMID_RE.match(pmid) else ""
    return Unreadable(pmid=pmid, key=hashlib.sha256(raw).hexdigest()[:16], error=error)


def _deletions(elem: etree._Element, where: str) -> Iterator[ParsedItem]:
    """One `Deletion` per PMID, each with a minimal DeleteCitation of its own as raw payload."""
    for pmid_el in elem.iterfind("PMID"):
        try:
            pmid, version = _pmid(pmid_el)
        except _NoPmid as exc:
            raise MalformedPayload(f"{where}: <DeleteCitation> (line {elem.sourceline}) {exc}") from None
        minimal = etree.Element("DeleteCitation")
        etree.SubElement(minimal, "PMID", Version=str(version)).text = pmid
        yield ParsedItem(record=Deletion(pmid=pmid, pmid_version=version),
                         raw=_serialize(minimal), raw_format=RAW_FORMAT)


def _serialize(elem: etree._Element) -> bytes:
    return etree.tostring(elem, encoding="UTF-8", xml_declaration=False, with_tail=False)


# --------------------------------------------------------------------------------------------------
# Record building
#
# Fields are read through a one-pass index of an element's children (`_kids`): a record is read
# field by field, and one dict lookup per field is several times cheaper than an ElementPath
# `find` per field (profiled on the constructed files: ~1 us per `find`, ~60 per record).
# --------------------------------------------------------------------------------------------------

_Kids = dict[str, list[etree._Element]]
_NONE: list[etree._Element] = []


def _kids(el: etree._Element | None) -> _Kids:
    """Children of `el` grouped by tag, in document order (comments and PIs group under their
    factory function, so they never match a tag name)."""
    kids: _Kids = {}
    if el is not None:
        for child in el:
            group = kids.get(child.tag)
            if group is None:
                kids[child.tag] = [child]
            else:
                group.append(child)
    return kids


def _one(kids: _Kids, tag: str) -> etree._Element | None:
    group = kids.get(tag)
    return group[0] if group else None


def _each(el: etree._Element | None, tag: str) -> Iterator[etree._Element]:
    """Children of a list element (MeshHeadingList, GrantList, ...) with the given tag; none if absent."""
    return el.iterchildren(tag) if el is not None else iter(_NONE)


class _NoPmid(Exception):
    """Raised inside record building; mapped to MalformedPayload with the element's position."""


def _article(elem: etree._Element) -> Article:
    top = _kids(elem)
    citation_el = _one(top, "MedlineCitation")
    if citation_el is None:
        raise _NoPmid("has no <MedlineCitation>")
    cit = _kids(citation_el)
    pmid, version = _pmid(_one(cit, "PMID"))
    art = _kids(_one(cit, "Article"))  # a bare citation without <Article> leaves every field empty
    data = _kids(_one(top, "PubmedData"))
    journal = _kids(_one(art, "Journal"))
    issue = _kids(_one(journal, "JournalIssue"))
    abstract = _kids(_one(art, "Abstract"))
    ids = _article_ids(_one(data, "ArticleIdList"), art.get("ELocationID", _NONE))
    publication_types = list(_each(_one(art, "PublicationTypeList"), "PublicationType"))
    return Article(
        pmid=pmid,
        pmid_version=version,
        doi=ids.get("doi"),
        pmcid=ids.get("pmc"),
        pii=ids.get("pii"),
        title=_norm(_one(art, "ArticleTitle")) or "",
        vernacular_title=_norm(_one(art, "VernacularTitle")),
        abstract=_abstract(abstract),
        abstract_copyright=_norm(_one(abstract, "CopyrightInformation")),
        other_abstracts=[text for other in cit.get("OtherAbstract", _NONE)
                         if (text := _sections_text(_abstract(_kids(other))))],
        authors=_authors(art),
        journal=_journal(journal, issue, _kids(_one(cit, "MedlineJournalInfo"))),
        pagination=_pagination(_one(art, "Pagination")),
        pub_date=_partial_date(_one(issue, "PubDate")),
        article_dates=[d for el in art.get("ArticleDate", _NONE) if (d := _partial_date(el)).year],
        dates=_dates(_one(data, "History"), (
            ("completed", _one(cit, "DateCompleted")),
            ("revised", _one(cit, "DateRevised")),
            ("created", _one(cit, "DateCreated")))),
        publication_types=[t for el in publication_types if (t := _norm(el))],
        publication_type_uis=[ui for el in publication_types if (ui := _attr(el, "UI"))],
        mesh_headings=_mesh(_one(cit, "MeshHeadingList")),
        keywords=_keywords(cit),
        chemicals=_chemicals(_one(cit, "ChemicalList")),
        grants=_grants(_one(art, "GrantList")),
        databanks=_databanks(_one(art, "DataBankList")),
        comments_corrections=_comments(_one(cit, "CommentsCorrectionsList")),
        languages=[t for el in art.get("Language", _NONE) if (t := _leaf(el))],
        publication_status=_leaf(_one(data, "PublicationStatus")),
        citation_status=_attr(citation_el, "Status"),
    )


def _book_article(elem: etree._Element) -> Article:
    """A Bookshelf record (GeneReviews, PDQ summaries, ...): chapter title if any, else the book's."""
    top = _kids(elem)
    doc_el = _one(top, "BookDocument")
    if doc_el is None:
        raise _NoPmid("has no <BookDocument>")
    doc = _kids(doc_el)
    pmid, version = _pmid(_one(doc, "PMID"))
    book = _kids(_one(doc, "Book"))
    data = _kids(_one(top, "PubmedBookData"))
    abstract = _kids(_one(doc, "Abstract"))
    ids = _article_ids(_one(data, "ArticleIdList"), book.get("ELocationID", _NONE))
    for key, value in _article_ids(_one(doc, "ArticleIdList"), ()).items():
        ids.setdefault(key, value)
    book_title = _norm(_one(book, "BookTitle"))
    publication_types = doc.get("PublicationType", _NONE)
    return Article(
        pmid=pmid,
        pmid_version=version,
        is_book=True,
        doi=ids.get("doi"),
        pmcid=ids.get("pmc"),
        pii=ids.get("pii"),
        title=_norm(_one(doc, "ArticleTitle")) or book_title or "",
        vernacular_title=_norm(_one(doc, "VernacularTitle")),
        abstract=_abstract(abstract),
        abstract_copyright=_norm(_one(abstract, "CopyrightInformation")),
        authors=_authors(doc) or _authors(book),
        pagination=_pagination(_one(doc, "Pagination")),
        pub_date=_partial_date(_one(book, "PubDate")),
        dates=_dates(_one(data, "History"), (
            ("contributed", _one(doc, "ContributionDate")),
            ("revised", _one(doc, "DateRevised")))),
        publication_types=[t for el in publication_types if (t := _norm(el))],
        publication_type_uis=[ui for el in publication_types if (ui := _attr(el, "UI"))],
        keywords=_keywords(doc),
        grants=_grants(_one(doc, "GrantList")),
        languages=[t for el in doc.get("Language", _NONE) if (t := _leaf(el))],
        publication_status=_leaf(_one(data, "PublicationStatus")),
        book_title=book_title,
        publisher=_norm(_one(_kids(_one(book, "Publisher")), "PublisherName")),
    )


def _pmid(el: etree._Element | None) -> tuple[str, int]:
    """PMID text and its Version attribute. No (or a non-numeric) PMID means no record identity."""
    text = _leaf(el)
    if el is None or text is None:
        raise _NoPmid("has no PMID")
    if not (text.isascii() and PMID_RE.match(text)):
        raise _NoPmid(f"has an invalid PMID {text[:40]!r}")
    return text, _int_or_none(el.get("Version")) or 1


def _article_ids(id_list: etree._Element | None,
                 elocations: Iterable[etree._Element]) -> dict[str, str]:
    """doi/pmc/pii from the record's own ArticleIdList (authoritative), ELocationID as fallback.

    Only that list is read: `ReferenceList/Reference` carries ArticleIdLists of the *cited* papers,
    which must never leak into this record's identifiers.
    """
    ids: dict[str, str] = {}
    for el in _each(id_list, "ArticleId"):
        kind = (el.get("IdType") or "pubmed").lower()
        if kind not in ids and (value := _leaf(el)):
            ids[kind] = value
    for el in elocations:
        kind = (el.get("EIdType") or "").lower()
        if kind and kind not in ids and el.get("ValidYN", "Y") != "N" and (value := _leaf(el)):
            ids[kind] = value
    return ids


def _abstract(abstract: _Kids) -> list[AbstractSection]:
    """<AbstractText> sections with Label and NlmCategory; empty sections are dropped."""
    return [AbstractSection(label=_attr(part, "Label"), nlm_category=_attr(part, "NlmCategory"), text=text)
            for part in abstract.get("AbstractText", _NONE) if (text := _norm(part))]


def _sections_text(sections: list[AbstractSection]) -> str:
    return "\n".join(f"{s.label}: {s.text}" if s.label else s.text for s in sections)


def _authors(parent: _Kids) -> list[Author]:
    """Valid authors (ValidYN="N" marks a superseded spelling) of the first non-editor AuthorList.

    Pre-2014 citations carry one Article/Affiliation instead of per-author AffiliationInfo; PubMed
    shows it as the first author's, and so do we.
    """
    authors: list[Author] = []
    for author_list in parent.get("AuthorList", _NONE):
        if author_list.get("Type") != "editors":
            authors = [_author(el) for el in author_list.iterchildren("Author") if el.get("ValidYN") != "N"]
            break
    legacy = _norm(_one(parent, "Affiliation"))
    if legacy and authors and not authors[0].affiliations:
        authors[0] = authors[0].model_copy(update={"affiliations": [legacy]})
    return authors


def _author(el: etree._Element) -> Author:
    kids = _kids(el)
    orcid = next((_orcid(i) for i in kids.get("Identifier", _NONE)
                  if (i.get("Source") or "").upper() == "ORCID" and _leaf(i)), None)
    return Author(
        last_name=_norm(_one(kids, "LastName")),
        fore_name=_norm(_one(kids, "ForeName")),
        initials=_leaf(_one(kids, "Initials")),
        collective_name=_norm(_one(kids, "CollectiveName")),
        affiliations=[text for info in kids.get("AffiliationInfo", _NONE)
                      for a in info.iterchildren("Affiliation") if (text := _norm(a))],
        orcid=orcid,
    )


def _orcid(el: etree._Element) -> str:
    """ORCID iDs come as bare ids or as http(s)://orcid.org/ URLs; keep the bare id."""
    value = _leaf(el) or ""
    return value.rstrip("/").rsplit("/", 1)[-1]


def _journal(journal: _Kids, issue: _Kids, info: _Kids) -> Journal:
    issn = _one(journal, "ISSN")
    return Journal(
        title=_norm(_one(journal, "Title")),
        iso_abbreviation=_norm(_one(journal, "ISOAbbreviation")),
        issn=_leaf(issn),
        issn_type=_attr(issn, "IssnType") if issn is not None else None,
        volume=_leaf(_one(issue, "Volume")),
        issue=_leaf(_one(issue, "Issue")),
        medline_ta=_norm(_one(info, "MedlineTA")),
        nlm_unique_id=_leaf(_one(info, "NlmUniqueID")),
        country=_norm(_one(info, "Country")),
        issn_linking=_leaf(_one(info, "ISSNLinking")),
    )


def _pagination(el: etree._Element | None) -> str | None:
    """MedlinePgn ("107-14"), else StartPage-EndPage."""
    kids = _kids(el)
    medline = _leaf(_one(kids, "MedlinePgn"))
    if medline:
        return medline
    start, end = _leaf(_one(kids, "StartPage")), _leaf(_one(kids, "EndPage"))
    return f"{start}-{end}" if start and end else start


def _partial_date(el: etree._Element | None) -> PartialDate:
    """<PubDate>/<ArticleDate>: Year/Month/Day, Year/Season, or free-text MedlineDate."""
    if el is None:
        return PartialDate()
    kids = _kids(el)
    return PartialDate.from_parts(
        _code(_one(kids, "Year")), _code(_one(kids, "Month")), _code(_one(kids, "Day")),
        season=_code(_one(kids, "Season")), medline_date=_norm(_one(kids, "MedlineDate")))


def _dates(history: etree._Element | None,
           citation_dates: Iterable[tuple[str, etree._Element | None]]) -> dict[str, dt.date]:
    """History dates by PubStatus, then citation dates (which win: the model defines "revised" as
    MedlineCitation/DateRevised). Incomplete or impossible dates are skipped, never fatal."""
    dates: dict[str, dt.date] = {}
    for el in _each(history, "PubMedPubDate"):
        status = (el.get("PubStatus") or "").strip()
        if status and status not in dates and (day := _full_date(el)):
            dates[status] = day
    for status, el in citation_dates:
        if el is not None and (day := _full_date(el)):
            dates[status] = day
    return dates


def _full_date(el: etree._Element) -> dt.date | None:
    kids = _kids(el)
    year = _int_or_none(_code(_one(kids, "Year")))
    month_text = _code(_one(kids, "Month"))
    month = parse_month(month_text) if month_text else None
    day = _int_or_none(_leaf(_one(kids, "Day")))
    if year is None or month is None or day is None:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _mesh(heading_list: etree._Element | None) -> list[MeshHeading]:
    result = []
    for heading in _each(heading_list, "MeshHeading"):
        kids = _kids(heading)
        descriptor = _one(kids, "DescriptorName")
        name = _norm(descriptor)
        if descriptor is None or not name:
            continue
        result.append(MeshHeading(
            descriptor=name,
            descriptor_ui=_attr(descriptor, "UI"),
            major_topic=descriptor.get("MajorTopicYN") == "Y",
            qualifiers=[MeshQualifier(name=q_name, ui=_attr(q, "UI"), major_topic=q.get("MajorTopicYN") == "Y")
                        for q in kids.get("QualifierName", _NONE) if (q_name := _norm(q))],
        ))
    return result


def _keywords(parent: _Kids) -> list[str]:
    """Keywords of every KeywordList (NLM and author-supplied), first spelling kept, in order."""
    seen: dict[str, None] = {}
    for keyword_list in parent.get("KeywordList", _NONE):
        for el in keyword_list.iterchildren("Keyword"):
            if text := _norm(el):
                seen.setdefault(text, None)
    return list(seen)


def _chemicals(chemical_list: etree._Element | None) -> list[Chemical]:
    """RegistryNumber "0" is PubMed's placeholder for "none": kept as None."""
    result = []
    for el in _each(chemical_list, "Chemical"):
        kids = _kids(el)
        substance = _one(kids, "NameOfSubstance")
        name = _norm(substance)
        if substance is None or not name:
            continue
        registry = _leaf(_one(kids, "RegistryNumber"))
        result.append(Chemical(name=name, ui=_attr(substance, "UI"),
                               registry_number=None if registry == "0" else registry))
    return result


def _grants(grant_list: etree._Element | None) -> list[Grant]:
    return [Grant(grant_id=_leaf(_one(kids, "GrantID")), acronym=_leaf(_one(kids, "Acronym")),
                  agency=_norm(_one(kids, "Agency")), country=_norm(_one(kids, "Country")))
            for kids in map(_kids, _each(grant_list, "Grant"))]


def _databanks(bank_list: etree._Element | None) -> list[DataBank]:
    """<DataBank>: name plus accession numbers (NCT ids for ClinicalTrials.gov)."""
    result = []
    for kids in map(_kids, _each(bank_list, "DataBank")):
        name = _norm(_one(kids, "DataBankName"))
        if name:
            numbers = _each(_one(kids, "AccessionNumberList"), "AccessionNumber")
            result.append(DataBank(name=name, accession_numbers=[a for el in numbers if (a := _leaf(el))]))
    return result


def _comments(comment_list: etree._Element | None) -> list[CommentCorrection]:
    """CommentsCorrections links; RetractionIn / RetractionOf drive the retraction flags."""
    result = []
    for el in _each(comment_list, "CommentsCorrections"):
        ref_type = _attr(el, "RefType")
        if ref_type:
            kids = _kids(el)
            result.append(CommentCorrection(ref_type=ref_type, ref_source=_norm(_one(kids, "RefSource")),
                                            pmid=_leaf(_one(kids, "PMID"))))
    return result


# --------------------------------------------------------------------------------------------------
# Small text helpers (hot: called for every field of every record)
# --------------------------------------------------------------------------------------------------

def _norm(el: etree._Element | None) -> str | None:
    """All text under `el` (inline <i>, <sup>, MathML flattened; markup never kept), whitespace
    collapsed; None when empty. Escaped markup such as `&lt;script&gt;` stays literal text."""
    if el is None:
        return None
    text = el.text if len(el) == 0 else "".join(el.itertext())
    if not text:
        return None
    return " ".join(text.split()) or None


def _leaf(el: etree._Element | None) -> str | None:
    """Text of a code-like leaf (PMID, ISSN, Year): stripped, None when empty."""
    if el is None or el.text is None:
        return None
    return el.text.strip() or None


def _code(el: etree._Element | None) -> str | None:
    """A date part ("2012", "Jul", "Spring"): ASCII only, since `int()` and `str.isdigit()` disagree
    on other scripts' digits ("²".isdigit() is True, int("²") raises)."""
    text = _leaf(el)
    return text if text is not None and text.isascii() else None


def _attr(el: etree._Element, name: str) -> str | None:
    """Attribute value stripped; empty (e.g. MeSH `UI=""` in constructed files) means absent."""
    value = el.get(name)
    if value is None:
        return None
    return value.strip() or None


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _notes(el: etree._Element | None) -> list[str]:
    """esearch ErrorList/WarningList children as "Tag: text"."""
    if el is None:
        return []
    notes = []
    for child in el:
        if isinstance(child.tag, str):  # skip comments and processing instructions
            text = _norm(child)
            notes.append(f"{child.tag}: {text}" if text else child.tag)
    return notes
