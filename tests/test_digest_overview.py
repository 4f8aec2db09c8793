"""What an oncologist reads at the top of a digest topic and on each item (issue 16): the extractive overview
(counts and significant results, cited and checked), evidence labels that never claim more than the grading
knows, topics in the subscriber's order, the title once per item, and the items past the cap kept for the web."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.catalog import Catalog
from oncolit.delivery import render
from synthesis import digest as dg
from synthesis.citations import check_sentence, citation_ids, split_sentences
from synthesis.grading import grade
from synthesis.verify import find_quote
from tests.test_digest import DAY, EGFR_TRIAL, NEJM, melanoma_topics, nejm, real_catalog, trial_revision


@pytest.fixture
def catalog(shared_data: Path, isolated_env: Path) -> Iterator[Catalog]:
    with real_catalog(shared_data, isolated_env) as cat:
        yield cat


MELANOMA = [dg.Topic(name="Melanoma", query="BRAF MEK inhibitor melanoma")]


def _doc(catalog: Catalog, topics: list[dg.Topic], **config: int) -> dict:
    return dg.build_digest(catalog, topics, dg.window_after(catalog, None, 14), period_end=DAY,
                           config=dg.DigestConfig(**config))


def test_extractive_overview_states_counts_and_significant_results_with_checked_citations(catalog: Catalog) -> None:
    topic = _doc(catalog, MELANOMA)["topics"][0]
    ov, items = topic["overview"], topic["items"]
    assert ov["kind"] == "extractive"
    assert ov["summary"].startswith(f"{len(items) + topic['more']} record") and "1 RCT" in ov["summary"]
    nejm_clause = next(s for s in ov["support"] if s["record_id"] == NEJM)
    # Built from the extracted outcome: name, measure, estimate, interval, p, direction; cited.
    assert nejm_clause["clause"] == ("Progression-free survival: HR 0.45 (95% CI 0.33 to 0.63; p<0.001), lower hazard "
                                     "[PMID:22663011].")
    sources = {i["record_id"]: dg.source_text(catalog.get_record(i["record_id"])) for i in items}
    for s in ov["support"]:
        assert find_quote(s["quote"], sources[s["record_id"]]) is not None  # the verbatim support is the record's
        assert check_sentence(s["clause"], sources).ok
    assert ov["text"] == " ".join(s["clause"] for s in ov["support"])
    assert all(check_sentence(s, sources).ok for s in split_sentences(ov["text"]))
    assert set(citation_ids(ov["text"])) <= {i["record_id"] for i in items}
    # It does not paste the items' quotes again.
    for item in items:
        if item["key_finding"] and item["key_finding"]["kind"] == "quote":
            assert item["key_finding"]["text"][:60] not in ov["text"]


def test_no_overview_when_nothing_significant(catalog: Catalog) -> None:
    topics = {t["name"]: t for t in _doc(catalog, melanoma_topics())["topics"]}
    lung = topics["Lung"]
    assert lung["items"] and lung["overview"]["kind"] == "none" and lung["overview"]["text"] == ""
    html = render.render_html({**_email_frame(), **_doc(catalog, melanoma_topics())})
    assert "Significant results" in html  # melanoma's overview, and only one
    assert html.count("Significant results") == 1


def _email_frame() -> dict:
    return {"subscriber": {"email": "ana@example.org", "name": "Dr Ana"}, "subject": "s",
            "period": {"key": "2026-11-27", "label": "27 November", "frequency": "daily"},
            "topics_followed": ["Melanoma", "Lung"], "unsubscribe": {"url": None, "mailto_url": "mailto:x@y.z"}}


def test_registration_and_not_graded_labels(catalog: Catalog, shared_data: Path) -> None:
    lung = next(t for t in _doc(catalog, melanoma_topics())["topics"] if t["name"] == "Lung")
    trial = next(i for i in lung["items"] if i["record_id"] == EGFR_TRIAL)
    ev = trial["evidence"]
    assert ev["kind"] == "registration" and ev["label"].startswith("Registration")
    assert ev["phase"] == "phase III" and ev["status"] == "active, not recruiting" and "participants" in ev["enrolment"]
    assert "not evidence" in ev["why"] and "Level" not in ev["label"]
    # Once results are posted, the same trial is graded like any other record.
    revised = trial_revision(shared_data).record
    assert dg.evidence_label(revised, grade(revised)).kind == "graded"
    # A record whose design could not be determined: "Not graded", with the grading's reason, never "Level 5".
    bare = nejm(catalog).model_copy(update={"pmid": "99990002", "title": "Melanoma", "abstract": [],
                                            "publication_types": ["Journal Article"], "mesh_headings": [],
                                            "keywords": [], "databanks": []})
    g = grade(bare)
    assert g.design == "other" and g.level == "5"
    label = dg.evidence_label(bare, g)
    assert label.kind == "not_graded" and label.label == "Not graded" and label.why.startswith("design not determined")
    text = " ".join(render.render_text({**_email_frame(), **_doc(catalog, melanoma_topics())}).split())
    assert "Registration · phase III, active, not recruiting" in text and "Why not graded:" in text


def test_topics_in_the_subscribers_order_title_once_and_cut_items_kept(catalog: Catalog) -> None:
    melanoma, lung = melanoma_topics()
    for order in ([lung, melanoma], [melanoma, lung]):
        doc = _doc(catalog, order, max_items_per_topic=2)
        assert [t["name"] for t in doc["topics"]] == [t.name for t in order]
    top = next(i for i in doc["topics"][0]["items"] if i["record_id"] == NEJM)
    assert top["title"] not in top["source"] and "N Engl J Med. 2012;367(2):107-14" in top["source"]
    assert top["title"] in top["citation"]  # the full reference stays in the JSON
    frame = _email_frame()
    for rendered in (render.render_text({**frame, **doc}), render.render_html({**frame, **doc}),
                     render.render_markdown({**frame, **doc})):
        assert " ".join(rendered.split()).count(top["title"]) == 1
    lung_out = doc["topics"][1]
    assert lung_out["more"] == len(lung_out["more_items"]) > 0
    cut = {i["record_id"] for i in lung_out["more_items"]}
    assert not cut & set(doc["item_ids"]) and all(i["title"] and i["evidence"]["label"] for i in lung_out["more_items"])


def test_a_ratio_clause_reads_its_direction_from_the_numbers_not_the_sentence() -> None:
    """The findings models read "median PFS 4.8 vs 1.5 months" as increased while the same sentence's HR is
    0.45: the clause about the HR must say lower hazard, and a ratio has no unit."""
    from synthesis.digest_overview import clause_variants, is_significant
    from synthesis.findings import Outcome

    o = Outcome(name="Median progression-free survival", kind="PFS", measure="HR", value=0.45, unit="months",
                ci_low=0.33, ci_high=0.63, ci_level=95, p_value=0.001, p_comparator="<", direction="increased",
                intervention="trametinib", comparator="chemotherapy", quote="hazard ratio 0.45", source="rules+model")
    assert is_significant(o)
    assert clause_variants(o)[0] == ("Median progression-free survival: HR 0.45 (95% CI 0.33 to 0.63; p<0.001), "
                                     "lower hazard")
    # Other measures: no "higher"/"lower" without the arms, and no arms from a per-sentence tagger.
    rate = o.model_copy(update={"measure": "median", "value": 4.8, "ci_low": None, "ci_high": None})
    assert clause_variants(rate)[0] == "Median progression-free survival: median 4.8 months (p<0.001), a significant " \
                                       "difference"
    assert not is_significant(o.model_copy(update={"p_value": 0.2, "p_comparator": "="}))
    assert not is_significant(o.model_copy(update={"ci_low": 0.8, "ci_high": 1.2, "p_value": None}))
    assert clause_variants(o.model_copy(update={"value": None, "ci_low": 0.8, "ci_high": 1.2})) == []
    # A result with no number gives no clause; a name the tagger cut mid-phrase loses its dangling word.
    bare = o.model_copy(update={"measure": "other", "value": None, "ci_low": None, "ci_high": None, "p_value": None,
                                "name": "Overall 5-year survival for"})
    assert clause_variants(bare) == []
    assert clause_variants(bare.model_copy(update={"p_value": 0.01}))[0] == ("Overall 5-year survival: p<0.01, "
                                                                             "a significant difference")
