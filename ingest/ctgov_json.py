"""ClinicalTrials.gov API v2 JSON -> `Trial`, and what changed between two versions of a trial.

Reads the three shapes v2 produces: one study (`/studies/{nctId}`, one file of a bulk download), a
search page (`{"studies": [...], "nextPageToken": ..., "totalCount": ...}`), or a bare list of
studies. Responses requested with `fields=` lack whole modules, so every section is optional here.
The retired classic API (v1, PascalCase `FullStudiesResponse`) is refused by name, not half-read.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from ingest.errors import MalformedPayload
from ingest.records.common import PartialDate, canonical_json
from ingest.records.trial import (
    Arm,
    Design,
    Eligibility,
    Intervention,
    MeshTerm,
    Organization,
    Outcome,
    Reference,
    SecondaryId,
    Trial,
    TrialDate,
)
from ingest.source import ParsedItem

RAW_FORMAT = "ctgov-json"
# A full page of 1,000 studies with results runs to a few hundred MB at worst; anything larger is
# not a ClinicalTrials.gov response and is refused before it is decoded.
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
NCT_ID_RE = re.compile(r"^NCT\d{8}$")
_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{1,2}))?(?:-(\d{1,2}))?$")
_V1_KEYS = ("FullStudiesResponse", "StudyFieldsResponse", "FullStudy", "Study", "ProtocolSection")


@dataclass
class ParsedPage:
    """One decoded payload: its studies, and the cursor/total a `/studies` page carries."""

    items: list[ParsedItem] = field(default_factory=list)
    next_page_token: str | None = None
    total_count: int | None = None


# --- decoding --------------------------------------------------------------------------------------

def decode_json(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "payload") -> Any:
    """Bytes -> JSON value, refusing oversize, truncated, non-UTF-8 and absurdly nested input."""
    if len(data) > max_bytes:
        raise MalformedPayload(f"{what} is {len(data):,} bytes, over the {max_bytes:,}-byte limit for CT.gov JSON.")
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(exc.doc.rstrip()) - 1 or exc.msg.startswith("Unterminated string")
        hint = " (truncated?)" if cut and exc.doc.strip() else ""
        raise MalformedPayload(f"{what} is not valid JSON{hint}: {exc.msg} at line {exc.lineno} "
                               f"column {exc.colno}") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedPayload(f"{what} is not UTF-8 JSON: {exc}") from exc
    except RecursionError as exc:
        raise MalformedPayload(f"{what} is nested too deeply to be a CT.gov study") from exc


def parse_ctgov_payload(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "payload") -> ParsedPage:
    """Parse a single study, a `/studies` page or a list of studies from raw bytes."""
    return parse_ctgov_object(decode_json(data, max_bytes=max_bytes, what=what), what=what)


def parse_ctgov_object(obj: Any, *, what: str = "payload") -> ParsedPage:
    """Parse already-decoded JSON: the schema checks, separate from decoding so callers can tell
    a transient truncated body (retry) from a well-formed but wrong document (do not)."""
    if isinstance(obj, list):
        return ParsedPage(items=[_item(s, f"{what} item {i}") for i, s in enumerate(obj)])
    if not isinstance(obj, dict):
        raise MalformedPayload(f"{what} is a JSON {type(obj).__name__}, not a CT.gov API v2 study or page.")
    if "studies" in obj:
        return _page(obj, what)
    if "protocolSection" in obj:
        return ParsedPage(items=[_item(obj, what)])
    _reject_unknown(obj, what)


def _page(obj: dict[str, Any], what: str) -> ParsedPage:
    studies = obj["studies"]
    if not isinstance(studies, list):
        raise MalformedPayload(f"{what}: 'studies' is a {type(studies).__name__}, expected a list.")
    token = obj.get("nextPageToken")
    total = obj.get("totalCount")
    if token is not None and (not isinstance(token, str) or not token):
        raise MalformedPayload(f"{what}: nextPageToken {token!r} is not a non-empty string.")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise MalformedPayload(f"{what}: totalCount {total!r} is not a non-negative integer.")
    items = [_item(s, f"{what} study {i}") for i, s in enumerate(studies)]
    return ParsedPage(items=items, next_page_token=token, total_count=total)


def _reject_unknown(obj: dict[str, Any], what: str) -> NoReturn:
    """Name the classic v1 format outright: it looks like CT.gov JSON but nothing in it maps."""
    if any(key in obj for key in _V1_KEYS):
        raise MalformedPayload(
            f"{what} is the retired classic ClinicalTrials.gov API (v1) JSON ({next(k for k in _V1_KEYS if k in obj)}); "
            "OncoLit reads API v2 JSON only. Download the studies again from /api/v2/studies.")
    keys = ", ".join(sorted(obj)[:8]) or "none"
    raise MalformedPayload(f"{what} is not a CT.gov API v2 study or /studies page (top-level keys: {keys}).")


def _item(study: Any, what: str) -> ParsedItem:
    trial = parse_study(study, what=what)
    return ParsedItem(record=trial, raw=canonical_json(study).encode("utf-8"), raw_format=RAW_FORMAT)


# --- files and bulk downloads ----------------------------------------------------------------------

def iter_ctgov_path(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[ParsedItem]:
    """Studies from a JSON file, a folder of them (searched recursively), or a .zip bulk download.

    Files are read in name order so a re-run meets the studies in the same order.
    """
    path = Path(path)
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and _is_input(p.name)):
            yield from iter_ctgov_path(child, max_bytes=max_bytes)
    elif path.suffix.lower() == ".zip":
        yield from _iter_zip(path, max_bytes)
    elif path.is_file():
        size = path.stat().st_size
        if size > max_bytes:
            raise MalformedPayload(f"{path} is {size:,} bytes, over the {max_bytes:,}-byte limit.")
        yield from parse_ctgov_payload(path.read_bytes(), max_bytes=max_bytes, what=str(path)).items
    else:
        raise FileNotFoundError(f"{path}: no such file or folder")


def _is_input(name: str) -> bool:
    return name.lower().endswith((".json", ".zip")) and not name.startswith(".")


def _iter_zip(path: Path, max_bytes: int) -> Iterator[ParsedItem]:
    """Members are size-checked before and while reading, so a zip bomb cannot exhaust memory."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise MalformedPayload(f"{path} is not a readable zip file: {exc}") from exc
    with archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir() or not info.filename.lower().endswith(".json"):
                continue
            what = f"{path}!{info.filename}"
            if info.file_size > max_bytes:
                raise MalformedPayload(f"{what} is {info.file_size:,} bytes, over the {max_bytes:,}-byte limit.")
            try:
                with archive.open(info) as member:
                    data = member.read(max_bytes + 1)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise MalformedPayload(f"{what} could not be read from the archive: {exc}") from exc
            yield from parse_ctgov_payload(data, max_bytes=max_bytes, what=what).items


# --- one study ---------------------------------------------------------------------------------------

def parse_study(obj: Any, *, what: str = "study") -> Trial:
    """One API v2 study object -> `Trial`. Missing modules give empty fields, never an error;
    only a missing or malformed NCT id (the record's identity) is fatal."""
    if not isinstance(obj, dict):
        raise MalformedPayload(f"{what} is a JSON {type(obj).__name__}, not a study object.")
    protocol = _dict(obj, "protocolSection")
    if "protocolSection" not in obj:
        _reject_unknown(obj, what)
    ident = _dict(protocol, "identificationModule")
    nct_id = _str(ident, "nctId")
    if nct_id is None:
        raise MalformedPayload(f"{what} has no protocolSection.identificationModule.nctId.")
    if not NCT_ID_RE.match(nct_id.strip().upper()):
        raise MalformedPayload(f"{what} has an invalid NCT id {nct_id!r} (expected NCT followed by 8 digits).")
    try:
        return Trial(nct_id=nct_id.strip().upper(), modules=_modules(obj, protocol),
                     **_identification(ident), **_status(_dict(protocol, "statusModule")),
                     **_sponsors(_dict(protocol, "sponsorCollaboratorsModule")),
                     **_description(_dict(protocol, "descriptionModule")),
                     **_conditions(_dict(protocol, "conditionsModule")),
                     design=_design(_dict(protocol, "designModule")),
                     **_arms(_dict(protocol, "armsInterventionsModule")),
                     **_outcomes(_dict(protocol, "outcomesModule")),
                     eligibility=_eligibility(_dict(protocol, "eligibilityModule")),
                     **_locations(_dict(protocol, "contactsLocationsModule")),
                     references=_references(_dict(protocol, "referencesModule")),
                     has_results=obj.get("hasResults") is True,
                     **_mesh(_dict(obj, "derivedSection")))
    except ValidationError as exc:
        raise MalformedPayload(f"{what} ({nct_id}) has fields of the wrong type: {exc.errors()[0]}") from exc


def _modules(obj: dict[str, Any], protocol: dict[str, Any]) -> list[str]:
    names = [k for k, v in protocol.items() if isinstance(v, dict)]
    names += [k for k in ("hasResults", "resultsSection", "derivedSection") if k in obj]
    return sorted(names)


def _identification(m: dict[str, Any]) -> dict[str, Any]:
    org = _dict(m, "organization")
    return {
        "org_study_id": _str(_dict(m, "orgStudyIdInfo"), "id"),
        "organization": _org(org.get("fullName"), org.get("class")),
        "secondary_ids": [SecondaryId(id=i, type=_str(s, "type"), domain=_str(s, "domain"), link=_str(s, "link"))
                          for s in _dicts(m, "secondaryIdInfos") if (i := _str(s, "id"))],
        "brief_title": _str(m, "briefTitle"),
        "official_title": _str(m, "officialTitle"),
        "acronym": _str(m, "acronym"),
    }


def _status(m: dict[str, Any]) -> dict[str, Any]:
    verified = _str(m, "statusVerifiedDate")
    return {
        "overall_status": _str(m, "overallStatus"),
        "last_known_status": _str(m, "lastKnownStatus"),
        "why_stopped": _str(m, "whyStopped"),
        "status_verified": parse_ctgov_date(verified) if verified else None,
        "start_date": _date_struct(m, "startDateStruct"),
        "primary_completion_date": _date_struct(m, "primaryCompletionDateStruct"),
        "completion_date": _date_struct(m, "completionDateStruct"),
        "first_posted": _date_struct(m, "studyFirstPostDateStruct"),
        "results_first_posted": _date_struct(m, "resultsFirstPostDateStruct"),
        "last_update_posted": _date_struct(m, "lastUpdatePostDateStruct"),
    }


def _sponsors(m: dict[str, Any]) -> dict[str, Any]:
    lead = _dict(m, "leadSponsor")
    collaborators = [_org(c.get("name"), c.get("class")) for c in _dicts(m, "collaborators")]
    return {"lead_sponsor": _org(lead.get("name"), lead.get("class")),
            "collaborators": [c for c in collaborators if c is not None]}


def _description(m: dict[str, Any]) -> dict[str, Any]:
    return {"brief_summary": _str(m, "briefSummary"), "detailed_description": _str(m, "detailedDescription")}


def _conditions(m: dict[str, Any]) -> dict[str, Any]:
    return {"conditions": _strs(m, "conditions"), "keywords": _strs(m, "keywords")}


def _design(m: dict[str, Any]) -> Design:
    info = _dict(m, "designInfo")
    masking = _dict(info, "maskingInfo")
    enrollment = _dict(m, "enrollmentInfo")
    return Design(
        study_type=_str(m, "studyType"), phases=_strs(m, "phases"),
        allocation=_str(info, "allocation"), intervention_model=_str(info, "interventionModel"),
        observational_model=_str(info, "observationalModel"), time_perspective=_str(info, "timePerspective"),
        masking=_str(masking, "masking"), who_masked=_strs(masking, "whoMasked"),
        primary_purpose=_str(info, "primaryPurpose"),
        enrollment_count=_int(enrollment.get("count")), enrollment_type=_str(enrollment, "type"))


def _arms(m: dict[str, Any]) -> dict[str, Any]:
    arms = [Arm(label=label, type=_str(a, "type"), description=_str(a, "description"),
                intervention_names=_strs(a, "interventionNames"))
            for a in _dicts(m, "armGroups") if (label := _str(a, "label"))]
    interventions = [Intervention(name=name, type=_str(i, "type"), description=_str(i, "description"),
                                  other_names=_strs(i, "otherNames"), arm_group_labels=_strs(i, "armGroupLabels"))
                     for i in _dicts(m, "interventions") if (name := _str(i, "name"))]
    return {"arms": arms, "interventions": interventions}


def _outcomes(m: dict[str, Any]) -> dict[str, Any]:
    def read(key: str) -> list[Outcome]:
        return [Outcome(measure=measure, description=_str(o, "description"), time_frame=_str(o, "timeFrame"))
                for o in _dicts(m, key) if (measure := _str(o, "measure"))]
    return {"primary_outcomes": read("primaryOutcomes"), "secondary_outcomes": read("secondaryOutcomes"),
            "other_outcomes": read("otherOutcomes")}


def _eligibility(m: dict[str, Any]) -> Eligibility:
    healthy = m.get("healthyVolunteers")
    return Eligibility(
        criteria=_str(m, "eligibilityCriteria"), sex=_str(m, "sex"),
        minimum_age=_str(m, "minimumAge"), maximum_age=_str(m, "maximumAge"),
        healthy_volunteers=healthy if isinstance(healthy, bool) else None,
        std_ages=_strs(m, "stdAges"), study_population=_str(m, "studyPopulation"),
        sampling_method=_str(m, "samplingMethod"))


def _locations(m: dict[str, Any]) -> dict[str, Any]:
    """Only the count and countries: large trials list thousands of sites that search never needs."""
    sites = _dicts(m, "locations")
    countries = [c for s in sites if (c := _str(s, "country"))]
    return {"location_count": len(sites), "countries": list(dict.fromkeys(countries))}


def _references(m: dict[str, Any]) -> list[Reference]:
    refs = []
    for r in _dicts(m, "references"):
        pmid = _str(r, "pmid")
        refs.append(Reference(pmid=pmid.strip() if pmid and pmid.strip().isdigit() else None,
                              type=_str(r, "type"), citation=_str(r, "citation")))
    return refs


def _mesh(derived: dict[str, Any]) -> dict[str, Any]:
    def terms(module: str, key: str) -> list[MeshTerm]:
        return [MeshTerm(id=i, term=t) for x in _dicts(_dict(derived, module), key)
                if (i := _str(x, "id")) and (t := _str(x, "term"))]
    return {"condition_mesh": terms("conditionBrowseModule", "meshes"),
            "condition_mesh_ancestors": terms("conditionBrowseModule", "ancestors"),
            "intervention_mesh": terms("interventionBrowseModule", "meshes"),
            "intervention_mesh_ancestors": terms("interventionBrowseModule", "ancestors")}


# --- dates -------------------------------------------------------------------------------------------

def parse_ctgov_date(text: str) -> PartialDate:
    """"2016", "2016-07" or "2016-07-14" -> PartialDate; anything else is kept as free text."""
    match = _DATE_RE.match(text.strip())
    if not match:
        return PartialDate(medline_date=text)
    year, month, day = (int(g) if g else None for g in match.groups())
    if month is not None and not 1 <= month <= 12:
        month, day = None, None
    if day is not None and not 1 <= day <= 31:
        day = None
    return PartialDate(year=year, month=month, day=day)


def _date_struct(m: dict[str, Any], key: str) -> TrialDate | None:
    struct = _dict(m, key)
    text = _str(struct, "date")
    if text is None:
        return None
    return TrialDate(**parse_ctgov_date(text).model_dump(), type=_str(struct, "type"))


# --- tolerant accessors: a partial or odd document yields empties, never a crash -----------------

def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def _dicts(obj: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def _strs(obj: dict[str, Any], key: str) -> list[str]:
    value = obj.get(key)
    if isinstance(value, str):
        value = [value]
    return [v for v in value if isinstance(v, str) and v.strip()] if isinstance(value, list) else []


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _org(name: Any, agency_class: Any) -> Organization | None:
    if not isinstance(name, str) or not name.strip():
        return None
    return Organization(name=name, agency_class=agency_class if isinstance(agency_class, str) else None)


# --- change detection --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Watched:
    name: str
    module: str
    value: Callable[[Trial], Any]


def _date_value(d: TrialDate | None) -> dict[str, Any] | None:
    return {"date": d.iso(), "type": d.type} if d else None


def _outcome_value(t: Trial) -> list[dict[str, Any]]:
    return [{"measure": _norm(o.measure), "description": _norm(o.description), "time_frame": _norm(o.time_frame)}
            for o in t.primary_outcomes]


def _norm(text: str | None) -> str | None:
    """Whitespace-only edits are not changes a reader cares about."""
    return " ".join(text.split()) if text else None


# What users follow between versions, and the module each value lives in: a value whose module is
# absent from either version (a `fields=` response) is unknown, so it is never reported as changed.
WATCHED: tuple[_Watched, ...] = (
    _Watched("overall_status", "statusModule", lambda t: t.overall_status),
    _Watched("why_stopped", "statusModule", lambda t: _norm(t.why_stopped)),
    _Watched("enrollment_count", "designModule", lambda t: t.design.enrollment_count),
    _Watched("enrollment_type", "designModule", lambda t: t.design.enrollment_type),
    _Watched("has_results", "hasResults", lambda t: t.has_results),
    _Watched("results_first_posted", "statusModule", lambda t: _date_value(t.results_first_posted)),
    _Watched("primary_outcomes", "outcomesModule", _outcome_value),
    _Watched("primary_completion_date", "statusModule", lambda t: _date_value(t.primary_completion_date)),
    _Watched("last_update_posted", "statusModule", lambda t: _date_value(t.last_update_posted)),
)


def trial_changes(old: Trial | None, new: Trial) -> list[dict[str, Any]]:
    """The user-visible changes from `old` to `new`, as `{"field", "before", "after"}` (JSON-ready).

    A first version (`old` is None) has nothing to compare with and yields an empty list; the
    catalog records it as new.
    """
    if old is None:
        return []
    if old.nct_id != new.nct_id:
        raise ValueError(f"cannot compare versions of different trials ({old.nct_id} vs {new.nct_id})")
    changes = []
    for watched in WATCHED:
        if watched.module not in old.modules or watched.module not in new.modules:
            continue
        before, after = watched.value(old), watched.value(new)
        if before != after:
            changes.append({"field": watched.name, "before": before, "after": after})
    return changes
