"""ClinicalTrials.gov API v2 JSON -> Trial: real recorded responses, hand-written edge cases, versions."""

from __future__ import annotations

import datetime as dt
import json
import zipfile
from pathlib import Path

import pytest

from ingest.ctgov_json import (
    RAW_FORMAT,
    iter_ctgov_path,
    parse_ctgov_date,
    parse_ctgov_payload,
    parse_study,
    trial_changes,
)
from ingest.errors import MalformedPayload
from ingest.records.common import content_hash
from ingest.records.trial import Trial

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ctgov"

# Real API v2 files and the studies each holds (biomcp: searches and single gets; aact: v2 records).
REAL_V2 = {
    "biomcp/get_nct02576665_20260811.json": ["NCT02576665"],
    "biomcp/get_nct06382129_20260811.json": ["NCT06382129"],
    "biomcp/get_nct06604689_20260811.json": ["NCT06604689"],
    "biomcp/search_age_count_20260811.json": ["NCT01595035"],
    "biomcp/search_keytruda_limit3_20260811.json": ["NCT05431270", "NCT03590054", "NCT04795661"],
    "biomcp/search_melanoma_recruiting_limit3_20260811.json": ["NCT06970236", "NCT04114136", "NCT04318717"],
    "biomcp/search_nsclc_egfr_l858r_20260811.json": ["NCT06382129", "NCT06604689"],
    "biomcp/search_phelan_limit50_20260811.json": ["NCT02710084", "NCT05105685", "NCT01525901"],
    "biomcp/search_phelan_limit5_20260811.json": 5,
    "biomcp/search_phelan_next_20260811.json": 5,
    **{f"aact/v2_json/{n}.json": [n] for n in (
        "NCT00465816", "NCT00763412", "NCT00973089", "NCT02210780", "NCT02552212", "NCT03418623",
        "NCT03453554", "NCT03475563", "NCT03630471", "NCT04207047", "NCT05594173", "NCT06171568")},
    # The AACT fixture named NCT02278341 really holds NCT02552212 (an older derivedSection of it).
    "aact/v2_json/NCT02278341.json": ["NCT02552212"],
}


def ctgov_real(shared_data: Path) -> Path:
    return shared_data / "ctgov" / "real"


def load(name: str) -> Trial:
    page = parse_ctgov_payload((FIXTURES / name).read_bytes())
    assert len(page.items) == 1
    return page.items[0].record  # type: ignore[return-value]


def study_dict(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


# --- every real v2 study parses ------------------------------------------------------------------

@pytest.mark.parametrize("rel", sorted(REAL_V2))
def test_every_real_api_v2_study_parses(shared_data: Path, rel: str) -> None:
    path = ctgov_real(shared_data) / rel
    page = parse_ctgov_payload(path.read_bytes(), what=rel)
    ids = [item.record.nct_id for item in page.items]
    expected = REAL_V2[rel]
    assert ids == expected if isinstance(expected, list) else len(ids) == expected
    original = json.loads(path.read_bytes())
    studies = original["studies"] if "studies" in original else [original]
    for item, study in zip(page.items, studies, strict=True):
        assert isinstance(item.record, Trial)
        assert item.raw_format == RAW_FORMAT
        assert json.loads(item.raw) == study  # raw keeps the whole study, canonically spelled
        assert item.record.record_id == f"ctgov:{item.record.nct_id}"


def test_every_json_file_in_the_real_folder_is_accounted_for(shared_data: Path) -> None:
    """New real files must be added above (v2) or be one of the known non-v2 files."""
    root = ctgov_real(shared_data)
    found = {str(p.relative_to(root)) for p in root.rglob("*.json")}
    non_v2 = {p for p in found if p.startswith("aact/classic_v1_json/")} | {"biomcp/capture-receipts.filtered.json"}
    assert found - non_v2 == set(REAL_V2)


def test_nct02576665_matches_the_recorded_json(shared_data: Path) -> None:
    path = ctgov_real(shared_data) / "biomcp" / "get_nct02576665_20260811.json"
    trial = parse_ctgov_payload(path.read_bytes()).items[0].record
    assert isinstance(trial, Trial)
    assert trial.nct_id == "NCT02576665"
    assert trial.title.startswith("A Study of Toca 511, a Retroviral Replicating Vector")
    assert trial.overall_status == "TERMINATED" and not trial.withdrawn
    assert (trial.start_date.year, trial.start_date.month, trial.start_date.day) == (2016, 7, None)
    assert trial.start_date.iso() == "2016-07" and trial.start_date.type is None
    assert trial.completion_date.as_date() == dt.date(2019, 12, 20)
    assert trial.lead_sponsor.name == "Tocagen Inc." and trial.lead_sponsor.agency_class is None
    assert len(trial.conditions) == 12 and trial.conditions[0] == "Colorectal Cancer"
    assert trial.design.study_type == "INTERVENTIONAL" and trial.phases == ["PHASE1"]
    assert trial.design.enrollment_count == 21
    assert [i.name for i in trial.interventions] == ["Toca 511", "Toca FC"]
    assert trial.interventions[1].other_names == ["Flucytosine", "5-FC", "5-Fluorocytosine"]
    assert (trial.eligibility.sex, trial.eligibility.minimum_age, trial.eligibility.maximum_age) == (
        "ALL", "18 Years", "75 Years")
    assert trial.eligibility.criteria.startswith("Inclusion Criteria:")
    assert trial.location_count == 3 and trial.countries == ["United States"]
    # requested with fields=: no outcomes, references or hasResults in the response
    assert "outcomesModule" not in trial.modules and "hasResults" not in trial.modules
    assert trial.primary_outcomes == [] and trial.references == [] and trial.has_results is False
    assert "vocimagene amiretrorepvec" in trial.text and "Melanoma" in trial.text


def test_full_aact_record_with_results(shared_data: Path) -> None:
    path = ctgov_real(shared_data) / "aact" / "v2_json" / "NCT00763412.json"
    trial = parse_ctgov_payload(path.read_bytes()).items[0].record
    assert trial.has_results is True
    assert trial.results_first_posted.as_date() == dt.date(2017, 6, 5)
    assert trial.results_first_posted.type == "ACTUAL"
    assert trial.last_updated == dt.date(2017, 6, 5)
    assert trial.primary_completion_date.iso() == "2013-01" and trial.primary_completion_date.type == "ACTUAL"
    assert trial.first_posted.type == "ESTIMATED"
    assert trial.status_verified.iso() == "2017-05"
    assert trial.design.masking == "QUADRUPLE"
    assert trial.design.who_masked == ["PARTICIPANT", "CARE_PROVIDER", "INVESTIGATOR", "OUTCOMES_ASSESSOR"]
    assert (trial.design.enrollment_count, trial.design.enrollment_type) == (31, "ACTUAL")
    assert trial.design.allocation == "RANDOMIZED" and trial.design.phases == ["NA"]
    assert "resultsSection" in trial.modules


def test_real_withdrawn_study(shared_data: Path) -> None:
    path = ctgov_real(shared_data) / "aact" / "v2_json" / "NCT00973089.json"
    trial = parse_ctgov_payload(path.read_bytes()).items[0].record
    assert trial.withdrawn and trial.overall_status == "WITHDRAWN"
    assert trial.why_stopped.startswith("recruiting or enrolling participants has halted")
    assert trial.design.enrollment_count == 0
    assert trial.pmids == ["18519994"] and trial.result_pmids == []
    assert trial.references[0].type == "BACKGROUND"
    assert [m.term for m in trial.condition_mesh] == ["Dental Caries"]
    assert trial.condition_mesh_ancestors[0].id == "D000017001"
    assert trial.eligibility.healthy_volunteers is True and trial.eligibility.std_ages == ["CHILD"]
    assert trial.countries == ["Israel"]
    assert trial.organization.name == "Hadassah Medical Organization"
    assert trial.organization.agency_class == "OTHER"
    assert trial.arms[1].intervention_names == ["Other: Incomplete caries removal in primary teeth"]


def test_abridged_aact_record_without_status_module(shared_data: Path) -> None:
    path = ctgov_real(shared_data) / "aact" / "v2_json" / "NCT03453554.json"
    trial = parse_ctgov_payload(path.read_bytes()).items[0].record
    assert trial.modules == ["hasResults", "identificationModule"]
    assert trial.overall_status is None and trial.last_update_posted is None
    assert trial.org_study_id == "AZ150096"


def test_two_real_copies_of_one_study_are_the_same_version(shared_data: Path) -> None:
    """The copies differ only in derivedSection bookkeeping: no user-visible change, equal hashes."""
    folder = ctgov_real(shared_data) / "aact" / "v2_json"
    older = parse_ctgov_payload((folder / "NCT02278341.json").read_bytes()).items[0]
    newer = parse_ctgov_payload((folder / "NCT02552212.json").read_bytes()).items[0]
    assert older.raw != newer.raw
    assert trial_changes(older.record, newer.record) == []
    assert content_hash(older.record) == content_hash(newer.record)


def test_search_page_cursor_and_total(shared_data: Path) -> None:
    folder = ctgov_real(shared_data) / "biomcp"
    first = parse_ctgov_payload((folder / "search_phelan_limit5_20260811.json").read_bytes())
    assert first.total_count == 21 and first.next_page_token == "ZVt07cGHkvI2wRk2CJf6_LLq14bEL8swd7KrgP4dnDeTsPkw"
    follow = parse_ctgov_payload((folder / "search_phelan_next_20260811.json").read_bytes())
    assert follow.total_count is None and follow.next_page_token
    last = parse_ctgov_payload((folder / "search_nsclc_egfr_l858r_20260811.json").read_bytes())
    assert last.next_page_token is None and last.total_count == 2


@pytest.mark.parametrize("name", ["NCT00023673.json", "NCT02028676.json", "NCT04780763.json",
                                  "covid-19-search.json", "ctg_api_all.json"])
def test_classic_v1_json_is_refused_by_name(shared_data: Path, name: str) -> None:
    path = ctgov_real(shared_data) / "aact" / "classic_v1_json" / name
    with pytest.raises(MalformedPayload, match=r"retired classic .*\(v1\)"):
        parse_ctgov_payload(path.read_bytes(), what=name)


def test_a_non_study_json_file_is_refused(shared_data: Path) -> None:
    path = ctgov_real(shared_data) / "biomcp" / "capture-receipts.filtered.json"
    with pytest.raises(MalformedPayload, match="not a CT.gov API v2 study.*entries, source"):
        parse_ctgov_payload(path.read_bytes())


def test_real_folder_reads_recursively(shared_data: Path) -> None:
    items = list(iter_ctgov_path(ctgov_real(shared_data) / "aact" / "v2_json"))
    assert len(items) == 13
    assert sum(i.record.nct_id == "NCT02552212" for i in items) == 2


# --- hand-written edge cases ---------------------------------------------------------------------

def test_withdrawn_fixture() -> None:
    trial = load("withdrawn.json")
    assert trial.withdrawn and trial.why_stopped.startswith("Sponsor decided")
    assert trial.phases == ["PHASE1", "PHASE2"]
    assert trial.start_date.type == "ESTIMATED" and trial.start_date.iso() == "2024-01"


def test_terminated_fixture_keeps_why_stopped() -> None:
    trial = load("terminated.json")
    assert trial.overall_status == "TERMINATED" and not trial.withdrawn
    assert trial.why_stopped == "Slow accrual"
    assert trial.primary_completion_date.as_date() == dt.date(2023, 8, 31)


def test_missing_sections_give_empty_fields() -> None:
    trial = load("minimal.json")
    assert trial.modules == ["identificationModule"]
    assert trial.title == "A registration with almost nothing in it"
    assert trial.design.phases == [] and trial.eligibility.criteria is None
    assert trial.location_count == 0 and trial.pmids == [] and trial.last_updated is None
    assert trial.text == "A registration with almost nothing in it"


def test_odd_types_are_tolerated_not_trusted() -> None:
    trial = load("odd_types.json")
    assert trial.nct_id == "NCT90000005"  # normalised case
    assert trial.conditions == ["Glioblastoma"] and trial.keywords == ["IDH-wildtype"]
    assert trial.start_date.year is None and trial.start_date.medline_date == "Spring 2024"
    assert trial.completion_date is None and trial.secondary_ids == []
    assert trial.design.enrollment_count == 40 and trial.design.phases == []
    assert [i.name for i in trial.interventions] == ["Radiotherapy"]
    assert trial.location_count == 0
    assert trial.pmids == ["44444444"] and trial.result_pmids == ["44444444"]
    assert trial.references[1].pmid is None and trial.references[1].citation == "Free text only"
    assert trial.eligibility.healthy_volunteers is None and trial.condition_mesh == []


def test_full_fixture_fields_and_properties() -> None:
    trial = load("NCT90000001_2026-02-10.json")
    assert trial.record_id == "ctgov:NCT90000001" and trial.acronym == "FICTION-1"
    assert [(s.id, s.type) for s in trial.secondary_ids] == [("2023-000123-45", "EUDRACT_NUMBER"),
                                                            ("R01CA000001", "NIH")]
    assert [(c.name, c.agency_class) for c in trial.collaborators] == [
        ("National Cancer Institute (NCI)", "NIH"), ("Fictional Pharma Inc.", "INDUSTRY")]
    assert trial.countries == ["United States", "France"] and trial.location_count == 3
    assert trial.pmids == ["11111111", "22222222", "33333333"]
    assert trial.result_pmids == ["22222222", "33333333"]
    assert trial.arms[0].type == "EXPERIMENTAL" and trial.interventions[0].other_names == ["FDX-01"]
    assert trial.secondary_outcomes[1].description.startswith("RECIST 1.1")
    assert trial.eligibility.std_ages == ["ADULT", "OLDER_ADULT"] and trial.eligibility.maximum_age is None
    assert trial.intervention_mesh[0].term == "Carboplatin"
    assert "FDX-01" in trial.text and "Untreated brain metastases" in trial.text


def test_pages_and_empty_result() -> None:
    page1 = parse_ctgov_payload((FIXTURES / "search_page1.json").read_bytes())
    assert [i.record.nct_id for i in page1.items] == ["NCT90000011", "NCT90000012"]
    assert (page1.next_page_token, page1.total_count) == ("page-2-token", 3)
    page2 = parse_ctgov_payload((FIXTURES / "search_page2.json").read_bytes())
    assert page2.next_page_token is None and len(page2.items) == 1
    empty = parse_ctgov_payload((FIXTURES / "search_empty.json").read_bytes())
    assert (empty.items, empty.next_page_token, empty.total_count) == ([], None, 0)


def test_a_bare_list_of_studies() -> None:
    data = json.dumps([study_dict("withdrawn.json"), study_dict("terminated.json")]).encode()
    assert [i.record.nct_id for i in parse_ctgov_payload(data).items] == ["NCT90000002", "NCT90000003"]


def test_raw_is_canonical_whatever_the_spelling() -> None:
    study = study_dict("terminated.json")
    pretty = json.dumps(study, indent=4).encode()
    compact = json.dumps(dict(reversed(list(study.items()))), separators=(",", ":")).encode()
    assert parse_ctgov_payload(pretty).items[0].raw == parse_ctgov_payload(compact).items[0].raw


@pytest.mark.parametrize("data, message", [
    (b'{"studies": [{"protocolSection": {"identificationModule": {"nctId": "NCT0', "not valid JSON.*truncated"),
    (b"", "not valid JSON"),
    (b"<html>Service Unavailable</html>", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not"),
    (b"42", "JSON int, not a CT.gov"),
    (b'"NCT01234567"', "JSON str"),
    (b'{"protocolSection": {"identificationModule": {}}}', "no protocolSection.identificationModule.nctId"),
    (b'{"protocolSection": {"identificationModule": {"nctId": "NCT123"}}}', "invalid NCT id 'NCT123'"),
    (b'{"protocolSection": "x"}', "no protocolSection"),
    (b'{"studies": {"a": 1}}', "'studies' is a dict"),
    (b'{"studies": [], "nextPageToken": 5}', "nextPageToken 5"),
    (b'{"studies": [], "totalCount": -1}', "totalCount -1"),
    (b'{"studies": [1]}', "study 0 is a JSON int"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not valid JSON"),
])
def test_malformed_payloads_are_refused_clearly(data: bytes, message: str) -> None:
    with pytest.raises(MalformedPayload, match=message):
        parse_ctgov_payload(data)


def test_size_is_bounded() -> None:
    data = (FIXTURES / "terminated.json").read_bytes()
    with pytest.raises(MalformedPayload, match="over the 100-byte limit"):
        parse_ctgov_payload(data, max_bytes=100)


def test_parse_study_directly() -> None:
    assert parse_study(study_dict("withdrawn.json")).nct_id == "NCT90000002"
    with pytest.raises(MalformedPayload, match="classic"):
        parse_study({"Study": {"ProtocolSection": {}}})


@pytest.mark.parametrize("text, parts", [
    ("2016", (2016, None, None)), ("2016-07", (2016, 7, None)), ("2016-07-14", (2016, 7, 14)),
    ("2016-13", (2016, None, None)), ("July 2016", (None, None, None)),
])
def test_dates(text: str, parts: tuple) -> None:
    date = parse_ctgov_date(text)
    assert (date.year, date.month, date.day) == parts


# --- files and zips --------------------------------------------------------------------------------

def test_zip_bulk_download(tmp_path: Path) -> None:
    archive = tmp_path / "ctg-studies.json.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("terminated.json", "withdrawn.json", "minimal.json"):
            zf.write(FIXTURES / name, f"ctg-studies/{name}")
        zf.writestr("ctg-studies/README.txt", "not a study")
    assert [i.record.nct_id for i in iter_ctgov_path(archive)] == ["NCT90000004", "NCT90000003", "NCT90000002"]
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.json").write_bytes((FIXTURES / "withdrawn.json").read_bytes())
    (folder / "b.zip").write_bytes(archive.read_bytes())
    assert len(list(iter_ctgov_path(folder))) == 4


def test_bad_files_name_themselves(tmp_path: Path) -> None:
    bad = tmp_path / "NCT09999999.json"
    bad.write_bytes(b'{"protocolSection": {"identificationModule": {"nctId": "NCT0999')
    with pytest.raises(MalformedPayload, match="NCT09999999.json is not valid JSON"):
        list(iter_ctgov_path(tmp_path))
    fake_zip = tmp_path / "download.zip"
    fake_zip.write_bytes(b"PK not really")
    with pytest.raises(MalformedPayload, match="not a readable zip"):
        list(iter_ctgov_path(fake_zip))
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("big.json", json.dumps(study_dict("terminated.json")))
    with pytest.raises(MalformedPayload, match=r"big.zip!big.json is .* over the 50-byte limit"):
        list(iter_ctgov_path(archive, max_bytes=50))
    with pytest.raises(FileNotFoundError):
        list(iter_ctgov_path(tmp_path / "absent.json"))


# --- versions --------------------------------------------------------------------------------------

def test_trial_changes_between_two_update_dates() -> None:
    old, new = load("NCT90000001_2024-03-01.json"), load("NCT90000001_2026-02-10.json")
    changes = {c["field"]: (c["before"], c["after"]) for c in trial_changes(old, new)}
    assert changes["overall_status"] == ("RECRUITING", "COMPLETED")
    assert changes["enrollment_count"] == (120, 112)
    assert changes["enrollment_type"] == ("ESTIMATED", "ACTUAL")
    assert changes["has_results"] == (False, True)
    assert changes["results_first_posted"] == (None, {"date": "2026-02-10", "type": "ACTUAL"})
    assert changes["primary_completion_date"] == ({"date": "2025-06", "type": "ESTIMATED"},
                                                  {"date": "2025-09-30", "type": "ACTUAL"})
    assert changes["last_update_posted"][1] == {"date": "2026-02-10", "type": "ACTUAL"}
    assert changes["primary_outcomes"][1][0]["measure"].endswith("blinded independent central review")
    assert "why_stopped" not in changes
    assert json.loads(json.dumps(trial_changes(old, new))) == trial_changes(old, new)
    assert trial_changes(new, old)[0] == {"field": "overall_status", "before": "COMPLETED", "after": "RECRUITING"}


def test_no_changes_for_first_or_identical_versions() -> None:
    trial = load("NCT90000001_2024-03-01.json")
    assert trial_changes(None, trial) == []
    assert trial_changes(trial, load("NCT90000001_2024-03-01.json")) == []


def test_whitespace_edits_are_not_changes() -> None:
    study = study_dict("NCT90000001_2024-03-01.json")
    study["protocolSection"]["outcomesModule"]["primaryOutcomes"][0]["measure"] = "Progression-free   survival\n"
    assert trial_changes(load("NCT90000001_2024-03-01.json"), parse_study(study)) == []


def test_partial_response_is_not_reported_as_removals() -> None:
    """A `fields=` response lacks modules: unknown is not "removed"."""
    study = study_dict("NCT90000001_2026-02-10.json")
    for module in ("designModule", "outcomesModule"):
        del study["protocolSection"][module]
    del study["hasResults"]
    changes = trial_changes(load("NCT90000001_2024-03-01.json"), parse_study(study))
    assert {c["field"] for c in changes} == {"overall_status", "results_first_posted",
                                             "primary_completion_date", "last_update_posted"}


def test_comparing_different_trials_is_an_error() -> None:
    with pytest.raises(ValueError, match="different trials"):
        trial_changes(load("withdrawn.json"), load("terminated.json"))
