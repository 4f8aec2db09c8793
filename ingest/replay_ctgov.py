"""ClinicalTrials.gov API v2 half of the replay server: studies loaded from JSON, searched and paged.

Loading: every `*.json` / `*.json.gz` under the folder (recursively, sorted by relative path). A file
is either one study (`{"protocolSection": ...}`, as `/studies/{nctId}` returns) or a page
(`{"studies": [...]}`, as `/studies` returns); other JSON (receipts, the retired v1 format) is
skipped with a log line. A study seen again in a later file replaces the earlier one.

`GET /api/v2/studies` supports:
    query.cond / term / intr / titles / outc / spons / lead / id / locn
                 case-insensitive substrings of the matching fields (see `_QUERY_PATHS`); a value may be
                 an AND of OR-groups: "melanoma", "(a) AND (b OR c)"
    filter.overallStatus, filter.ids   comma lists (postFilter.* is treated as filter.*)
    filter.advanced   AND of AREA[<Date>]RANGE[<from>,<to>] (YYYY-MM-DD, MIN, MAX; <Date> is a
                      statusModule date such as LastUpdatePostDate) and AREA[Phase]X / AREA[Phase](X OR Y)
    pageSize (default 10, at most 1000), pageToken (minted here), countTotal=true, format=json
Any other query.*/filter.* parameter is refused with 400 rather than silently ignored; fields, sort
and markupFormat are accepted and ignored: whole studies are served, sorted by (lastUpdatePostDate,
nctId) so that paging is stable. `GET /api/v2/studies/{nctId}` returns one study (404 if unknown).
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = "application/json"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
_NCT_RE = re.compile(r"^NCT\d{8}$")
_RANGE_RE = re.compile(r"^AREA\[(\w+)\]\s*RANGE\[\s*([^,\]]+?)\s*,\s*([^,\]]+?)\s*\]$")
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
# Parameters that do not change which studies a query returns, so a page token survives them.
_PAGING_PARAMS = {"pageToken", "pageSize", "countTotal", "format", "fields"}


class CTGovError(Exception):
    """A request the replay refuses; becomes an HTTP error with a small JSON body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.body = json.dumps({"message": message}).encode()


def study_id(study: Mapping[str, Any]) -> str | None:
    return study.get("protocolSection", {}).get("identificationModule", {}).get("nctId")


def _status_date(study: Mapping[str, Any], area: str) -> str | None:
    """AREA[LastUpdatePostDate] -> statusModule.lastUpdatePostDateStruct.date."""
    key = area[0].lower() + area[1:] + "Struct"
    value = study.get("protocolSection", {}).get("statusModule", {}).get(key, {})
    return value.get("date") if isinstance(value, dict) else None


def _sort_key(study: Mapping[str, Any]) -> tuple[str, str]:
    return (_status_date(study, "LastUpdatePostDate") or "", study_id(study) or "")


class CTGovCorpus:
    """Studies keyed by NCT id, in serving order; read-only after loading."""

    def __init__(self, studies: Mapping[str, dict[str, Any]]):
        self.by_id = dict(studies)
        self.ordered = sorted(self.by_id.values(), key=_sort_key)

    @classmethod
    def load(cls, folder: Path) -> CTGovCorpus:
        folder = Path(folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith((".json", ".json.gz")))
        studies: dict[str, dict[str, Any]] = {}
        for path in files:
            for study in _studies_in(path):
                nct = study_id(study)
                if nct:
                    studies[nct] = study
        if not studies:
            raise FileNotFoundError(f"no ClinicalTrials.gov API v2 studies in {folder}")
        log.info("replay: loaded %d CT.gov studies from %s", len(studies), folder)
        return cls(studies)

    def search(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        predicates = _predicates(params)
        return [s for s in self.ordered if all(p(s) for p in predicates)]


def _studies_in(path: Path) -> Iterator[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        data = json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not readable JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("studies"), list):
        yield from (s for s in data["studies"] if isinstance(s, dict))
    elif isinstance(data, dict) and "protocolSection" in data:
        yield data
    else:
        log.info("replay: %s is not an API v2 study or studies page; skipped", path)


# --- filters -----------------------------------------------------------------------------------

def _texts(study: Mapping[str, Any], *paths: str) -> str:
    """Lower-cased text of every value at the dotted paths (lists flattened), newline-joined."""
    out: list[str] = []
    for path in paths:
        values: list[Any] = [study]
        for part in path.split("."):
            step: list[Any] = []
            for value in values:
                if isinstance(value, dict) and part in value:
                    found = value[part]
                    step.extend(found if isinstance(found, list) else [found])
            values = step
        out.extend(str(v) for v in values if isinstance(v, (str, int, float)))
    return "\n".join(out).lower()


_PS = "protocolSection."
_QUERY_PATHS: dict[str, tuple[str, ...]] = {
    "query.cond": (_PS + "conditionsModule.conditions", _PS + "conditionsModule.keywords",
                   "derivedSection.conditionBrowseModule.meshes.term"),
    "query.term": (_PS + "identificationModule.briefTitle", _PS + "identificationModule.officialTitle",
                   _PS + "identificationModule.acronym", _PS + "conditionsModule.conditions",
                   _PS + "conditionsModule.keywords", _PS + "descriptionModule.briefSummary",
                   _PS + "armsInterventionsModule.interventions.name"),
    "query.intr": (_PS + "armsInterventionsModule.interventions.name",
                   _PS + "armsInterventionsModule.interventions.otherNames"),
    "query.titles": (_PS + "identificationModule.briefTitle", _PS + "identificationModule.officialTitle",
                     _PS + "identificationModule.acronym"),
    "query.outc": (_PS + "outcomesModule.primaryOutcomes.measure", _PS + "outcomesModule.secondaryOutcomes.measure"),
    "query.spons": (_PS + "sponsorCollaboratorsModule.leadSponsor.name",
                    _PS + "sponsorCollaboratorsModule.collaborators.name"),
    "query.lead": (_PS + "sponsorCollaboratorsModule.leadSponsor.name",),
    "query.id": (_PS + "identificationModule.nctId", _PS + "identificationModule.orgStudyIdInfo.id",
                 _PS + "identificationModule.secondaryIdInfos.id"),
    "query.locn": (_PS + "contactsLocationsModule.locations.facility", _PS + "contactsLocationsModule.locations.city",
                   _PS + "contactsLocationsModule.locations.state", _PS + "contactsLocationsModule.locations.country"),
}
# Parameters that shape the answer, not the set of studies; accepted and ignored (whole studies are served).
_IGNORED_PARAMS = {"format", "fields", "sort", "pageSize", "pageToken", "countTotal", "markupFormat"}


def _predicates(params: Mapping[str, str]) -> list[Any]:
    """One predicate per search parameter; unknown `query.*`/`filter.*` parameters are refused, since
    silently ignoring a filter would return studies the live API would not."""
    predicates = []
    for name, value in params.items():
        name = name.replace("postFilter.", "filter.", 1)
        if name in _IGNORED_PARAMS or not value.strip():
            continue
        if name in _QUERY_PATHS:
            predicates.append(_text_predicate(value, _QUERY_PATHS[name]))
        elif name == "filter.overallStatus":
            statuses = {v.strip().upper() for v in value.split(",") if v.strip()}
            predicates.append(lambda s, wanted=statuses: _texts(s, _PS + "statusModule.overallStatus").upper()
                              in wanted)
        elif name == "filter.ids":
            ids = {v.strip().upper() for v in value.split(",") if v.strip()}
            predicates.append(lambda s, wanted=ids: (study_id(s) or "") in wanted)
        elif name == "filter.advanced":
            predicates.extend(_advanced_predicate(part) for part in _split_top_level_and(value))
        elif name.startswith(("query.", "filter.")):
            raise CTGovError(400, f"the replay server does not support {name}")
    return predicates


def _text_predicate(value: str, paths: tuple[str, ...]) -> Any:
    """An AND of OR-groups of case-insensitive substrings; parentheses and quotes are dropped.

    Enough for "melanoma", "non-small cell lung cancer", "(a) AND (b)" and "a OR b"; Essie's
    AREA[...] operators and nesting beyond that are refused.
    """
    if "AREA[" in value or "NOT " in value:
        raise CTGovError(400, f"the replay server supports only AND/OR of plain text in queries, not {value!r}")
    groups = [[alt.strip().strip('()"').strip().lower() for alt in re.split(r"\s+OR\s+", part)]
              for part in re.split(r"\s+AND\s+", value)]
    return lambda s: all(any(alt and alt in _texts(s, *paths) for alt in alts) for alts in groups)


def _split_top_level_and(expression: str) -> list[str]:
    """Split on AND outside brackets/parentheses, and drop one pair of wrapping parentheses."""
    parts, depth, start = [], 0, 0
    for match in re.finditer(r"[\[(]|[\])]|\sAND\s", expression):
        token = match.group(0)
        if token in "[(":
            depth += 1
        elif token in "])":
            depth -= 1
        elif depth == 0:
            parts.append(expression[start:match.start()])
            start = match.end()
    parts.append(expression[start:])
    out: list[str] = []
    for part in (p.strip() for p in parts if p.strip()):
        inner = _unwrap(part)
        out.extend(_split_top_level_and(inner) if inner != part else [part])
    return out


def _unwrap(part: str) -> str:
    while _wrapped(part):
        part = part[1:-1].strip()
    return part


def _wrapped(part: str) -> bool:
    """True for "(...)" where the first '(' closes at the very end (not "(a) AND (b)")."""
    if not (part.startswith("(") and part.endswith(")")):
        return False
    depth = 0
    for index, char in enumerate(part):
        depth += (char == "(") - (char == ")")
        if depth == 0 and index < len(part) - 1:
            return False
    return True


def _advanced_predicate(expression: str) -> Any:
    """AREA[SomeDate]RANGE[from,to] or AREA[Phase]X / AREA[Phase](X OR Y)."""
    phase = re.match(r"^AREA\[Phase\]\s*\(?([\w\s]+?)\)?$", expression)
    if phase:
        wanted = {p.strip().upper() for p in re.split(r"\s+OR\s+", phase.group(1))}
        return lambda s: bool(wanted & set(_texts(s, _PS + "designModule.phases").upper().split("\n")))
    return _range_predicate(expression)

def _range_predicate(expression: str) -> Any:
    match = _RANGE_RE.match(expression)
    if not match:
        raise CTGovError(400, f"the replay server supports only AREA[<Date>]RANGE[from,to] and AREA[Phase] "
                              f"in filter.advanced, not {expression!r}")
    area, low, high = match.groups()
    low = "" if low.upper() == "MIN" else low
    high = "9999-99-99" if high.upper() == "MAX" else high
    for bound in (low, high):
        if bound and bound != "9999-99-99" and not _DATE_RE.match(bound):
            raise CTGovError(400, f"unreadable date {bound!r} in filter.advanced: use YYYY-MM-DD, MIN or MAX")

    def in_range(study: Mapping[str, Any]) -> bool:
        day = _status_date(study, area)
        # ISO dates compare correctly as strings; a month-only date ("2024-05") sorts before its days.
        return day is not None and low <= day <= high
    return in_range


# --- paging ------------------------------------------------------------------------------------

class PageTokens:
    """Opaque page tokens minted by the server: token -> (query signature, offset)."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[tuple[tuple[str, str], ...], int]] = {}
        self._lock = threading.Lock()

    def mint(self, signature: tuple[tuple[str, str], ...], offset: int) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (signature, offset)
        return token

    def resolve(self, token: str, signature: tuple[tuple[str, str], ...]) -> int:
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            raise CTGovError(400, f"pageToken {token!r} is not valid")
        if found[0] != signature:
            raise CTGovError(400, "pageToken was issued for a different query")
        return found[1]


@dataclass(frozen=True)
class CTGovResponse:
    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE


class CTGovApp:
    """`studies` and `studies/{nctId}` under /api/v2/."""

    def __init__(self, corpus: CTGovCorpus):
        self.corpus = corpus
        self.tokens = PageTokens()

    def handle(self, path: str, params: Mapping[str, str]) -> CTGovResponse:
        try:
            if path == "studies":
                return CTGovResponse(200, _dump(self.list_studies(params)))
            if path.startswith("studies/"):
                return CTGovResponse(200, _dump(self.get_study(path.removeprefix("studies/"))))
            raise CTGovError(404, f"the replay server does not serve /api/v2/{path}")
        except CTGovError as exc:
            return CTGovResponse(exc.status, exc.body)

    def list_studies(self, params: Mapping[str, str]) -> dict[str, Any]:
        if params.get("format", "json").lower() != "json":
            raise CTGovError(400, "the replay server answers format=json only")
        size = _page_size(params.get("pageSize"))
        signature = tuple(sorted((k, v) for k, v in params.items() if k not in _PAGING_PARAMS))
        token = params.get("pageToken")
        offset = self.tokens.resolve(token, signature) if token else 0
        matches = self.corpus.search(params)
        page: dict[str, Any] = {"studies": matches[offset:offset + size]}
        if not token and params.get("countTotal", "").lower() == "true":
            page["totalCount"] = len(matches)  # the live API counts on the first page only
        if offset + size < len(matches):
            page["nextPageToken"] = self.tokens.mint(signature, offset + size)
        return page

    def get_study(self, nct_id: str) -> dict[str, Any]:
        nct_id = nct_id.strip("/").upper()
        if not _NCT_RE.match(nct_id):
            raise CTGovError(400, f"{nct_id!r} is not an NCT number")
        study = self.corpus.by_id.get(nct_id)
        if study is None:
            raise CTGovError(404, f"study {nct_id} not found")
        return study


def _page_size(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError:
        raise CTGovError(400, f"pageSize must be a whole number, not {value!r}") from None
    if size < 1:
        raise CTGovError(400, "pageSize must be at least 1")
    return min(size, MAX_PAGE_SIZE)


def _dump(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")
