"""E-utilities half of the replay server: a PubMed corpus loaded from XML files, esearch and efetch.

Answers are byte-for-byte in the shapes NCBI sends (same XML declaration, DOCTYPE and element
layout as the recorded responses under shared/data/pubmed/real), so a client that works here works
against eutils.ncbi.nlm.nih.gov.

Loading: every `*.xml` / `*.xml.gz` in the folder, in sorted name order. Each <PubmedArticle> (or
<PubmedBookArticle>) is kept as the exact bytes it had in the file, keyed by PMID. A later file
holding the same PMID replaces the earlier record (that is how PubMed update files revise
citations); a later <DeleteCitation> removes it.

Search term grammar (a small, documented subset of PubMed's):
    term     := "" | operand ( [op] operand )*          -- left to right, no precedence (as PubMed);
    op       := AND | OR | NOT                          --   adjacent operands are ANDed
    operand  := "(" term ")" | clause
    clause   := all[sb]                                 -- matches everything
              | text [ "[" field "]" ]                  -- text: word, word* (prefix) or "a phrase"
    field    := tiab | ti | mh | all  (also Title/Abstract, Title, MeSH Terms, All Fields)
Default field: title + abstract + MeSH (descriptors, qualifiers, keywords). Matching is
case-insensitive on word tokens; several words in one clause ("non-small cell") must appear
consecutively. Operators must be upper case, as in PubMed. Other tags and subsets get HTTP 400.
Dates: datetype=edat (entrez date), mdat (DateRevised, else entrez) or pdat (journal issue date;
the default, as at NCBI), mindate/maxdate as YYYY, YYYY/MM or YYYY/MM/DD, inclusive; either may
be given alone. Results are sorted by PMID descending, PubMed's order for date-bounded searches.
"""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import re
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

log = logging.getLogger(__name__)

XML_CONTENT_TYPE = "text/xml; charset=UTF-8"
ESEARCH_HEAD = (b'<?xml version="1.0" encoding="UTF-8" ?>\n'
                b'<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
                b'"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n')
EFETCH_HEAD = (b'<?xml version="1.0" ?>\n'
               b'<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
               b'"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n')
ESEARCH_RETMAX_LIMIT = 10_000  # PubMed refuses to list more ids than this per esearch
EFETCH_RETMAX_LIMIT = 10_000
DEFAULT_RETMAX = 20

_RECORD_RE = re.compile(rb"<(PubmedArticle|PubmedBookArticle)(?:\s[^>]*)?>.*?</\1>", re.DOTALL)
_DELETE_RE = re.compile(rb"<DeleteCitation>(.*?)</DeleteCitation>", re.DOTALL)
_PMID_RE = re.compile(rb"<PMID[^>]*>\s*(\d+)\s*</PMID>")
_WORD_RE = re.compile(r"\w+")
_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_FIELDS = {"tiab": ("ti", "ab"), "ti": ("ti",), "mh": ("mh",), "all": ("ti", "ab", "mh"),
           "all fields": ("ti", "ab", "mh")}


class EutilsError(Exception):
    """A request the replay refuses; becomes an HTTP error with an E-utilities-style XML body."""

    def __init__(self, status: int, message: str, root: str = "eSearchResult"):
        super().__init__(message)
        self.status = status
        head = ESEARCH_HEAD if root == "eSearchResult" else b'<?xml version="1.0" encoding="UTF-8" ?>\n'
        self.body = head + f"<{root}><ERROR>{escape(message)}</ERROR></{root}>\n".encode()


# --- corpus ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PubMedRecord:
    """One citation as served: its exact bytes plus what search needs."""

    pmid: str
    raw: bytes
    entrez_date: dt.date | None
    modified_date: dt.date | None
    publication_date: dt.date | None
    fields: Mapping[str, str]  # "ti" / "ab" / "mh" -> " tok tok tok " (lower-cased word tokens)
    source_file: str


class PubMedCorpus:
    """The PMIDs the replay knows, loaded once; read-only afterwards (safe across threads)."""

    def __init__(self, records: Mapping[str, PubMedRecord]):
        self.records = dict(records)

    @classmethod
    def load(cls, folder: Path) -> PubMedCorpus:
        """Read every PubMed XML file in `folder` in name order; later files revise earlier ones."""
        files = sorted(p for p in Path(folder).iterdir() if p.name.endswith((".xml", ".xml.gz")))
        if not files:
            raise FileNotFoundError(f"no PubMed XML files (*.xml, *.xml.gz) in {folder}")
        records: dict[str, PubMedRecord] = {}
        for path in files:
            data = _read_bytes(path)
            _check_well_formed(data, path)
            for match in _RECORD_RE.finditer(data):
                record = _index_record(match.group(0), path.name)
                records[record.pmid] = record
            for match in _DELETE_RE.finditer(data):
                for pmid in _PMID_RE.findall(match.group(1)):
                    records.pop(pmid.decode(), None)
        log.info("replay: loaded %d PubMed records from %d files in %s", len(records), len(files), folder)
        return cls(records)

    def search(self, term: str, datetype: str, mindate: dt.date | None, maxdate: dt.date | None) -> list[str]:
        """PMIDs matching term and date range, sorted by PMID descending."""
        query = parse_term(term)
        hits = [r.pmid for r in self.records.values()
                if _in_range(_date_of(r, datetype), mindate, maxdate) and query.matches(r)]
        return sorted(hits, key=int, reverse=True)


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.name.endswith(".gz") else raw


def _hardened_parser() -> etree.XMLParser:
    """Our own fixture files are trusted, but the loader is also pointed at downloads: stay safe."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _check_well_formed(data: bytes, path: Path) -> None:
    try:
        etree.fromstring(data, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"{path} is not well-formed PubMed XML: {exc}") from exc


def _index_record(raw: bytes, source_file: str) -> PubMedRecord:
    element = etree.fromstring(raw, _hardened_parser())
    pmid = (element.findtext(".//PMID") or "").strip()
    if not pmid:
        raise ValueError(f"a record in {source_file} has no PMID")
    entrez = _ymd(element.find(".//History/PubMedPubDate[@PubStatus='entrez']"))
    revised = _ymd(element.find(".//DateRevised"))
    return PubMedRecord(
        pmid=pmid,
        raw=raw,
        entrez_date=entrez,
        modified_date=revised or entrez,
        publication_date=_publication_date(element),
        fields={
            "ti": _tokens(" ".join(e.xpath("string()") for e in element.iter("ArticleTitle", "BookTitle"))),
            "ab": _tokens(" ".join(e.xpath("string()") for e in element.iter("AbstractText"))),
            "mh": _tokens(" ".join(e.xpath("string()") for e in element.iter("DescriptorName", "QualifierName",
                                                                               "Keyword"))),
        },
        source_file=source_file,
    )


def _tokens(text: str) -> str:
    return " " + " ".join(_WORD_RE.findall(text.lower())) + " "


def _ymd(element: etree._Element | None) -> dt.date | None:
    """Year/Month/Day children to a date; missing month or day count as 1 (PubMed does the same)."""
    if element is None:
        return None
    year = (element.findtext("Year") or "").strip()
    if not year.isdigit():
        return None
    month = _month_number(element.findtext("Month"))
    day = (element.findtext("Day") or "").strip()
    try:
        return dt.date(int(year), month, int(day) if day.isdigit() else 1)
    except ValueError:
        return None


def _month_number(text: str | None) -> int:
    text = (text or "").strip().lower()
    if text.isdigit():
        return int(text)
    return _MONTHS.get(text[:3], 1)


def _publication_date(element: etree._Element) -> dt.date | None:
    pub_date = element.find(".//JournalIssue/PubDate")
    if pub_date is None:
        pub_date = element.find(".//Book/PubDate")
    found = _ymd(pub_date)
    if found is None and pub_date is not None:
        year = re.match(r"\s*(\d{4})", pub_date.findtext("MedlineDate") or "")
        found = dt.date(int(year.group(1)), 1, 1) if year else None
    return found or _ymd(element.find(".//ArticleDate"))


def _date_of(record: PubMedRecord, datetype: str) -> dt.date | None:
    return {"edat": record.entrez_date, "mdat": record.modified_date, "pdat": record.publication_date}[datetype]


def _in_range(day: dt.date | None, low: dt.date | None, high: dt.date | None) -> bool:
    if low is None and high is None:
        return True
    if day is None:
        return False
    return (low is None or day >= low) and (high is None or day <= high)


# --- term grammar ------------------------------------------------------------------------------

class Node:
    """A parsed search term: something that matches records and can describe itself."""

    def matches(self, record: PubMedRecord) -> bool:
        raise NotImplementedError

    def translation(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Everything(Node):
    """all[sb], or an empty term."""

    def matches(self, record: PubMedRecord) -> bool:
        return True

    def translation(self) -> str:
        return "all[sb]"


@dataclass(frozen=True)
class Clause(Node):
    """Consecutive word tokens looked up in some fields."""

    words: tuple[str, ...]
    fields: tuple[str, ...]
    prefix: bool = False  # last word ended with '*': truncation

    def matches(self, record: PubMedRecord) -> bool:
        needle = " " + " ".join(self.words) + ("" if self.prefix else " ")
        return any(needle in record.fields[name] for name in self.fields)

    def translation(self) -> str:
        text = " ".join(self.words) + ("*" if self.prefix else "")
        return f'"{text}"[{_FIELD_LABELS.get(self.fields, "All Fields")}]'


@dataclass(frozen=True)
class Boolean(Node):
    """left AND/OR/NOT right."""

    op: str
    left: Node
    right: Node

    def matches(self, record: PubMedRecord) -> bool:
        if self.op == "OR":
            return self.left.matches(record) or self.right.matches(record)
        right = self.right.matches(record)
        return self.left.matches(record) and (right if self.op == "AND" else not right)

    def translation(self) -> str:
        return f"({self.left.translation()} {self.op} {self.right.translation()})"


_FIELD_LABELS = {("ti",): "Title", ("mh",): "MeSH Terms", ("ti", "ab"): "Title/Abstract"}
_FIELD_NAMES = {"title/abstract": "tiab", "title": "ti", "mesh terms": "mh", "mesh": "mh"}
_TOKEN_RE = re.compile(r'\s*(?:(\()|(\))|"([^"]*)"|([^\s()\["]+))(?:\[([^\]]*)\])?')


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" | ")" | "op" | "node"
    text: str = ""
    node: Node | None = None


def parse_term(term: str) -> Node:
    """Parse a search term; raise EutilsError(400) for syntax the replay does not know.

    As in PubMed, operators bind left to right with equal precedence, use parentheses to group.
    """
    tokens = _tokenize(term or "")
    if not tokens:
        return Everything()
    node, position = _parse_sequence(tokens, 0)
    if position != len(tokens):
        raise EutilsError(400, "unbalanced ')' in the search term")
    return node


def _tokenize(term: str) -> list[_Token]:
    tokens: list[_Token] = []
    rest = term.strip()
    while rest:
        match = _TOKEN_RE.match(rest)
        if not match or match.end() == 0:
            raise EutilsError(400, f"replay cannot parse the term near: {rest[:40]!r}")
        opening, closing, phrase, word, tag = match.groups()
        rest = rest[match.end():].strip()
        if (opening or closing) and tag is not None:
            raise EutilsError(400, "a field tag must follow a word or a quoted phrase, not a parenthesis")
        if opening or closing:
            tokens.append(_Token(opening or closing))
        elif phrase is None and tag is None and word in {"AND", "OR", "NOT"}:
            tokens.append(_Token("op", word))
        else:
            tokens.append(_Token("node", node=_make_clause(phrase if phrase is not None else word, tag)))
    return tokens


def _parse_sequence(tokens: list[_Token], position: int) -> tuple[Node, int]:
    """operand ((AND|OR|NOT)? operand)* up to a ')' or the end; adjacency means AND."""
    left, position = _parse_operand(tokens, position)
    while position < len(tokens) and tokens[position].kind != ")":
        op = "AND"
        if tokens[position].kind == "op":
            op = tokens[position].text
            position += 1
        right, position = _parse_operand(tokens, position)
        left = Boolean(op, left, right)
    return left, position


def _parse_operand(tokens: list[_Token], position: int) -> tuple[Node, int]:
    if position >= len(tokens):
        raise EutilsError(400, "the search term ends where a word or '(' was expected")
    token = tokens[position]
    if token.kind == "node" and token.node is not None:
        return token.node, position + 1
    if token.kind == "(":
        node, position = _parse_sequence(tokens, position + 1)
        if position >= len(tokens) or tokens[position].kind != ")":
            raise EutilsError(400, "unbalanced '(' in the search term")
        return node, position + 1
    raise EutilsError(400, f"unexpected {token.text or token.kind!r} in the search term")


def _make_clause(text: str, tag: str | None) -> Node:
    field = (tag or "all").strip().lower()
    field = _FIELD_NAMES.get(field, field)
    if field == "sb":
        if text.lower() != "all":
            raise EutilsError(400, f"unsupported subset {text!r}[sb]: only all[sb]")
        return Everything()
    if field not in _FIELDS:
        raise EutilsError(400, f"unsupported field tag [{tag}]: use tiab, ti, mh or all")
    words = tuple(_WORD_RE.findall(text.rstrip("*").lower()))
    if not words:
        raise EutilsError(400, f"empty search clause {text!r}")
    return Clause(words, _FIELDS[field], prefix=text.endswith("*"))


# --- history (WebEnv / query_key) --------------------------------------------------------------

class HistoryStore:
    """Server-side result sets, like NCBI's history server: WebEnv -> numbered query keys."""

    def __init__(self) -> None:
        self._sets: dict[str, list[list[str]]] = {}
        self._lock = threading.Lock()

    def store(self, ids: list[str], webenv: str | None = None) -> tuple[str, int]:
        with self._lock:
            if not webenv or webenv not in self._sets:
                webenv = "MCID_" + secrets.token_hex(12)
                self._sets[webenv] = []
            self._sets[webenv].append(list(ids))
            return webenv, len(self._sets[webenv])

    def get(self, webenv: str, query_key: int) -> list[str] | None:
        with self._lock:
            sets = self._sets.get(webenv)
            if sets is None or not 1 <= query_key <= len(sets):
                return None
            return sets[query_key - 1]


# --- endpoints ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class EutilsResponse:
    status: int
    body: bytes
    content_type: str = XML_CONTENT_TYPE


class EutilsApp:
    """esearch.fcgi and efetch.fcgi over a corpus; `params` are the merged GET/POST form fields."""

    def __init__(self, corpus: PubMedCorpus, *, esearch_id_limit: int = ESEARCH_RETMAX_LIMIT):
        self.corpus = corpus
        self.history = HistoryStore()
        self.esearch_id_limit = esearch_id_limit

    def handle(self, name: str, params: Mapping[str, str]) -> EutilsResponse:
        try:
            if name == "esearch.fcgi":
                return EutilsResponse(200, self.esearch(params))
            if name == "efetch.fcgi":
                return EutilsResponse(200, self.efetch(params))
            raise EutilsError(404, f"the replay server does not serve {name}", root="ERROR")
        except EutilsError as exc:
            return EutilsResponse(exc.status, exc.body)

    def esearch(self, params: Mapping[str, str]) -> bytes:
        _require_pubmed(params, "eSearchResult")
        term = params.get("term", "")
        datetype = params.get("datetype", "pdat").lower()
        if datetype not in {"edat", "mdat", "pdat"}:
            raise EutilsError(400, f"unsupported datetype {datetype!r}: use edat, mdat or pdat")
        low = _parse_date(params.get("mindate"), end=False)
        high = _parse_date(params.get("maxdate"), end=True)
        ids = self.corpus.search(term, datetype, low, high)
        if params.get("rettype") == "count":
            return ESEARCH_HEAD + f"<eSearchResult><Count>{len(ids)}</Count></eSearchResult>\n".encode()
        retstart = _int_param(params, "retstart", 0)
        retmax = min(_int_param(params, "retmax", DEFAULT_RETMAX), self.esearch_id_limit)
        history = ""
        if params.get("usehistory", "").lower() == "y":
            webenv, query_key = self.history.store(ids, params.get("WebEnv"))
            history = f"<QueryKey>{query_key}</QueryKey><WebEnv>{webenv}</WebEnv>"
        translation = _translation(term, datetype, params.get("mindate"), params.get("maxdate"))
        return render_esearch(ids, retstart, retmax, history, translation)

    def efetch(self, params: Mapping[str, str]) -> bytes:
        _require_pubmed(params, "eFetchResult")
        retmode = params.get("retmode", "xml").lower()
        rettype = params.get("rettype", "").lower()
        if retmode != "xml" or rettype not in {"", "xml", "full", "abstract"}:
            raise EutilsError(400, "the replay server serves PubMed XML only (retmode=xml)", root="eFetchResult")
        ids = self._efetch_ids(params)
        return render_efetch(self.corpus.records[i].raw for i in ids if i in self.corpus.records)

    def _efetch_ids(self, params: Mapping[str, str]) -> list[str]:
        if params.get("id"):
            return list(dict.fromkeys(i.strip() for i in params["id"].split(",") if i.strip()))
        webenv, key = params.get("WebEnv"), params.get("query_key")
        if not webenv or not key:
            raise EutilsError(400, "Empty id list - nothing todo", root="eFetchResult")
        ids = self.history.get(webenv, _int_param(params, "query_key", 0)) if key.isdigit() else None
        if ids is None:
            raise EutilsError(400, f"Cannot retrieve history data. query_key: {key}, WebEnv: {webenv}",
                              root="eFetchResult")
        retstart = _int_param(params, "retstart", 0)
        retmax = min(_int_param(params, "retmax", DEFAULT_RETMAX), EFETCH_RETMAX_LIMIT)
        return ids[retstart:retstart + retmax]


def render_esearch(ids: list[str], retstart: int, retmax: int, history: str, translation: str) -> bytes:
    """The eSearchResult layout NCBI sends (RetMax is the number of ids actually listed)."""
    page = ids[retstart:retstart + retmax]
    id_list = "<IdList>\n" + "".join(f"<Id>{i}</Id>\n" for i in page) + "</IdList>" if page else "<IdList/>"
    warning = "" if ids else "<WarningList><OutputMessage>No items found.</OutputMessage></WarningList>"
    body = (f"<eSearchResult><Count>{len(ids)}</Count><RetMax>{len(page)}</RetMax><RetStart>{retstart}</RetStart>"
            f"{history}{id_list}<TranslationSet/><QueryTranslation>{escape(translation)}</QueryTranslation>"
            f"{warning}</eSearchResult>\n")
    return ESEARCH_HEAD + body.encode()


def render_efetch(records: Iterable[bytes]) -> bytes:
    """The PubmedArticleSet layout efetch sends: records back to back, no trailing newline."""
    return EFETCH_HEAD + b"<PubmedArticleSet>\n" + b"".join(records) + b"</PubmedArticleSet>"


def _require_pubmed(params: Mapping[str, str], root: str) -> None:
    if params.get("db", "").lower() != "pubmed":
        raise EutilsError(400, f"the replay server serves db=pubmed only, not {params.get('db')!r}", root=root)


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise EutilsError(400, f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise EutilsError(400, f"{name} must not be negative")
    return number


def _parse_date(text: str | None, *, end: bool) -> dt.date | None:
    """YYYY, YYYY/MM or YYYY/MM/DD; a partial maxdate means the end of that year or month."""
    if not text:
        return None
    parts = text.strip().replace("-", "/").split("/")
    try:
        numbers = [int(p) for p in parts]
        if len(numbers) == 3:
            return dt.date(*numbers)
        if len(numbers) == 2:
            year, month = numbers
            if not end:
                return dt.date(year, month, 1)
            first_next = dt.date(year + month // 12, month % 12 + 1, 1)
            return first_next - dt.timedelta(days=1)
        if len(numbers) == 1:
            return dt.date(numbers[0], 12, 31) if end else dt.date(numbers[0], 1, 1)
    except ValueError:
        pass
    raise EutilsError(400, f"unreadable date {text!r}: use YYYY/MM/DD")


def _translation(term: str, datetype: str, mindate: str | None, maxdate: str | None) -> str:
    parts = [parse_term(term).translation()]
    if mindate or maxdate:
        parts.append(f'{mindate or "1000/01/01"}:{maxdate or "3000/12/31"}[{datetype.upper()}]')
    return " AND ".join(parts)
