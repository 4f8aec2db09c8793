"""Query expansion (issue 15): abbreviations, CT.gov intervention names and MeSH matches learned from the catalog's
own records, kept per record at sync, and added to queries by `oncolit search` unless `--no-expand`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.abbreviations import Abbreviation, find_abbreviations
from index.expansion import (
    ABBREVIATION,
    INTERVENTION,
    MESH,
    ExpansionConfig,
    QueryExpander,
    SynonymTable,
    record_pairs,
    term_key,
)
from index.sparse import BM25Encoder, token_index
from index.sync import is_live
from ingest.catalog import Catalog
from ingest.ctgov_json import iter_ctgov_path
from ingest.records import AbstractSection, Article, Deletion, MeshHeading
from ingest.source import ParsedItem
from tests.helpers import cli_json, run_cli

CTGOV_BL_B01D1 = "ctgov/real/biomcp/get_nct06382129_20260811.json"  # BL-B01D1 a.k.a. izalontamab brengitecan


def _article(pmid: str, title: str, text: str, **fields: object) -> ParsedItem:
    record = Article(pmid=pmid, title=title, abstract=[AbstractSection(text=text)], **fields)  # type: ignore[arg-type]
    return ParsedItem(record, b"<PubmedArticle/>", "pubmed-xml")


@pytest.mark.parametrize(("text", "expected"), [
    ("Patients with advanced non-small cell lung cancer (NSCLC) were randomized.",
     [("NSCLC", "non-small cell lung cancer")]),
    ("Median progression-free survival (PFS) and overall survival (OS) were longer.",
     [("PFS", "progression-free survival"), ("OS", "overall survival")]),
    ("Treatment with 5-fluorouracil (5-FU) and leucovorin.", [("5-FU", "5-fluorouracil")]),
    ("The hazard ratio (HR) for death was reported.", [("HR", "hazard ratio")]),
    ("Patients with metastatic colorectal cancer ( mCRC ) had KRAS testing.",  # tokenised text (HoC)
     [("mCRC", "metastatic colorectal cancer")]),
    ("Outcomes in NSCLC (non-small cell lung cancer) differ by histology.", [("NSCLC", "non-small cell lung cancer")]),
    ("Expression of epidermal growth factor receptor (EGFR) was measured by immunohistochemistry (IHC).",
     [("EGFR", "epidermal growth factor receptor"), ("IHC", "immunohistochemistry")]),
])
def test_definitions_are_found(text: str, expected: list[tuple[str, str]]) -> None:
    assert list(find_abbreviations(text)) == [Abbreviation(s, lf) for s, lf in expected]


@pytest.mark.parametrize("text", [
    "Forty-five patients were enrolled (n = 45).",
    "The difference was significant (p < 0.05).",
    "Overall survival was improved with pembrolizumab (HR 0.62).",
    "Overall survival was improved with pembrolizumab (HR 0.62; 95% CI 0.45-0.80).",
    "The risk of response was higher (OR, 1.52; 95% CI, 1.10 to 2.10).",
    "Response rates were similar (95% CI 0.5-0.8).",
    "Most tumours were stage three disease (III).",
    "Toxicity is summarised in the second table (Table 2).",
    "Arms were compared (see below).",
    "Median age was 62 years (range 41-79).",
])
def test_statistics_and_asides_are_not_definitions(text: str) -> None:
    assert list(find_abbreviations(text)) == []


def test_record_pairs_of_a_ctgov_trial_link_brand_generic_and_code(shared_data: Path) -> None:
    trial = next(iter_ctgov_path(shared_data / CTGOV_BL_B01D1)).record
    pairs = {(p.kind, *p.keys) for p in record_pairs(trial)}
    names = {term_key(n) for n in ("BL-B01D1", "iza-bren", "izalontamab brengitecan", "BMS-986507")}
    linked = {k for kind, a, b in pairs if kind == INTERVENTION for k in (a, b)}
    assert names <= linked
    assert (INTERVENTION, *sorted([term_key("BL-B01D1"), term_key("izalontamab brengitecan")])) in pairs


def test_record_pairs_use_mesh_and_keywords() -> None:
    record = Article(pmid="1", title="Osimertinib outcomes", keywords=["NSCLC", "osimertinib"],
                     abstract=[AbstractSection(text="A cohort treated with osimertinib.")],
                     mesh_headings=[MeshHeading(descriptor="Carcinoma, Non-Small-Cell Lung"),
                                    MeshHeading(descriptor="Lung Neoplasms")])
    assert [(p.kind, p.a, p.b) for p in record_pairs(record)] == [(MESH, "NSCLC", "Non-Small-Cell Lung Carcinoma")]


def test_query_weights_of_added_terms_are_lower() -> None:
    vector = BM25Encoder().encode_query("non-small cell lung cancer", [("NSCLC", 0.5), ("lung", 0.3)])
    weights = dict(zip(vector.indices, vector.values))
    assert weights[token_index("nsclc")] == 0.5 and weights[token_index("lung")] == 1.0


def _table(catalog: Catalog, path: Path) -> SynonymTable:
    table = SynonymTable(path)
    table.follow(catalog, is_live=lambda row: is_live(row, lambda _rid: False))
    return table


def test_table_follows_revisions_and_deletions(tmp_path: Path) -> None:
    with Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}") as catalog:
        catalog.ingest_batch([
            _article("1", "Osimertinib in non-small cell lung cancer (NSCLC)", "EGFR-mutant NSCLC responded."),
            _article("2", "Chemotherapy in NSCLC", "Acute lymphoblastic leukemia (ALL) is another disease."),
        ])
        table = _table(catalog, tmp_path / "synonyms.sqlite")
        expander = QueryExpander(table, ExpansionConfig())
        found = expander.expand("non-small cell lung cancer")
        assert [(e.matched, e.synonym, e.kind, e.records) for e in found] == [
            ("non-small cell lung cancer", "NSCLC", ABBREVIATION, 1)]
        assert found[0].weight == 0.5
        assert [e.synonym for e in expander.expand("NSCLC brain metastases")] == ["non-small cell lung cancer"]
        assert [e.synonym for e in expander.expand("NSCLC or NSCLC")] == ["non-small cell lung cancer"]  # once
        assert [e.synonym for e in expander.expand("nsclc")] == ["non-small cell lung cancer"]  # lower-case query
        assert expander.expand("all patients with melanoma") == []  # "all" is not "ALL"
        assert [e.synonym for e in expander.expand("ALL in children")] == ["Acute lymphoblastic leukemia"]
        assert table.follow(catalog, is_live=lambda row: True) == 0  # caught up: nothing read again

        revised = _article("1", "Osimertinib in lung cancer", "EGFR-mutant tumours responded.")
        catalog.ingest_batch([revised])
        table.follow(catalog, is_live=lambda row: is_live(row, lambda _rid: False))
        assert expander.expand("non-small cell lung cancer") == []  # the revision took its definition away
        catalog.ingest_batch([ParsedItem(Deletion(pmid="2"), b"", "pubmed-xml")])
        table.follow(catalog, is_live=lambda row: is_live(row, lambda _rid: False))
        assert expander.expand("ALL in children") == []
        table.reset()
        assert table.cursor().seq == 0


def test_shares_drop_rare_readings(tmp_path: Path) -> None:
    items = [_article(str(i), f"Study {i}", "Tumours expressing estrogen receptor (ER) were included.")
             for i in range(1, 5)]
    items.append(_article("9", "Stress", "Stress of the endoplasmic reticulum (ER) was measured."))
    with Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}") as catalog:
        catalog.ingest_batch(items)
        table = _table(catalog, tmp_path / "synonyms.sqlite")
        shares = {e.synonym: e.share for e in QueryExpander(table).expand("ER status")}
        assert shares == {"estrogen receptor": 0.8, "endoplasmic reticulum": 0.2}
        assert [e.synonym for e in QueryExpander(table, ExpansionConfig(min_share=0.5)).expand("ER status")] == [
            "estrogen receptor"]
        assert QueryExpander(table, ExpansionConfig(min_records=5)).expand("ER status") == []


def test_search_cli_expands_from_synced_records(shared_data: Path, isolated_env: Path) -> None:
    """One record defines NSCLC, another only says it: a sparse search for the long form finds the second only
    with expansion; the same for a trial's intervention other names."""
    isolated_env.mkdir(parents=True, exist_ok=True)
    items = [
        _article("101", "Osimertinib for EGFR-mutant non-small cell lung cancer (NSCLC)",
                 "In advanced non-small cell lung cancer (NSCLC) with EGFR mutations, osimertinib prolonged "
                 "progression-free survival."),
        _article("102", "Stereotactic radiosurgery for brain metastases from NSCLC",
                 "Sixty patients with NSCLC and one to three brain metastases received radiosurgery; local "
                 "control at one year was 85%."),
        _article("103", "Adjuvant nivolumab in resected melanoma", "Relapse-free survival improved."),
        _article("104", "Early experience with BL-B01D1", "BL-B01D1 was given every three weeks; toxicity was "
                 "mostly haematological."),
        *iter_ctgov_path(shared_data / CTGOV_BL_B01D1),
    ]
    with Catalog(f"sqlite:///{isolated_env / 'catalog.sqlite'}") as catalog:
        catalog.ingest_batch(items)
    synced = cli_json("index", "sync")
    assert synced["synonym_records"] == len(items) and synced["records_indexed"] == len(items)
    assert list((isolated_env / "index-state").glob("*.synonyms.sqlite"))

    query = ("search", "non-small cell lung cancer", "--mode", "sparse")
    expanded = cli_json(*query, env={"ONCOLIT_SEARCH__EXPAND_QUERIES": "true"})
    assert "pubmed:102" in [r["record_id"] for r in expanded["results"]]
    assert [(e["matched"], e["synonym"], e["kind"]) for e in expanded["expansions"]] == [
        ("non-small cell lung cancer", "NSCLC", "abbreviation")]
    plain = cli_json(*query, "--no-expand", env={"ONCOLIT_SEARCH__EXPAND_QUERIES": "true"})
    assert "pubmed:102" not in [r["record_id"] for r in plain["results"]] and plain["expansions"] == []
    assert "pubmed:101" in [r["record_id"] for r in plain["results"]]

    drug = cli_json("search", "izalontamab brengitecan", "--mode", "sparse", "--expand")
    assert "pubmed:104" in [r["record_id"] for r in drug["results"]]
    assert {e["synonym"] for e in drug["expansions"]} >= {"BL-B01D1", "BMS-986507"}
    assert "pubmed:104" not in [r["record_id"] for r in cli_json("search", "izalontamab brengitecan", "--mode",
                                                                 "sparse")["results"]]  # off by default
    text = run_cli("search", "non-small cell lung cancer", "--mode", "sparse", "--expand").stdout
    assert text.startswith("also searched: non-small cell lung cancer -> NSCLC")
    assert json.loads(json.dumps(expanded))  # the JSON is plain data


def test_retrieval_suite_modes_compose() -> None:
    from eval.suites.retrieval import split_mode

    assert split_mode("hybrid+expand+rerank") == ("hybrid", True, True)
    assert split_mode("sparse+expand") == ("sparse", False, True)
    assert split_mode("hybrid+rerank") == ("hybrid", True, False)
