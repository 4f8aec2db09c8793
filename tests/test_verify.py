"""Faithfulness checks: numbers in generated text, verbatim quotes, pruning extraction JSON."""

from __future__ import annotations

import pytest

from synthesis.rules.numbers import numbers_in
from synthesis.verify import find_quote, verify_fields, verify_numbers

SOURCE = (
    "RESULTS: A total of 1,234 patients were randomized. Median overall survival was 26.3 vs 22.1 months "
    "(HR 0\u00b762; 95% CI, 0.51\u20130.75; P<.001). The objective response rate was 45 % (55/123).\n"
    "Grade  3 or higher adverse events occurred in 30%   of patients; the mean change in score was "
    "\u22122.1 points. Patients aged 18-75 years were eligible."
)


# --------------------------------------------------------------------------------------------
# numbers_in
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "numbers"), [
    ("HR 0.62; 95% CI, 0.51-0.75; P<.001", {"0.62", "95", "0.51", "0.75", "0.001"}),
    ("0\u00b762 (0\u00b751\u20130\u00b775)", {"0.62", "0.51", "0.75"}),
    ("difference \u22122.1 (\u22123.0 to \u22121.2)", {"-2.1", "-3", "-1.2"}),
    ("1,234 patients; 45 %; 45.0%", {"1234", "45"}),
    ("odds ratio 1.45 (1.10,1.92)", {"1.45", "1.1", "1.92"}),
    ("aged 18-75 years", {"18", "75"}),
    ("HER2, CD8, T790M, NCT01234567", set()),
])
def test_numbers_in(text, numbers):
    assert numbers_in(text) == numbers


# --------------------------------------------------------------------------------------------
# verify_numbers
# --------------------------------------------------------------------------------------------

def test_faithful_sentence_passes_despite_typography():
    generated = ("Among 1234 randomized patients, median OS was 26.3 versus 22.1 months (HR 0.62, "
                 "95% CI 0.51 to 0.75) and the ORR was 45% [PMID:12345678].")
    assert verify_numbers(generated, SOURCE) == (True, [])


@pytest.mark.parametrize("generated", [
    "HR 0\u00b762",            # middle dot vs full stop
    "ORR 45.0 %",              # "45 %" in the source
    "1,234 patients",          # thousands separator either way
    "mean change -2.1 points",  # ASCII hyphen for a unicode minus
    "score fell by 2.1 points",  # an unsigned number may stand for the signed one
    "HR 0.620",                # trailing zero
    "P < 0.001",               # ".001" in the source
])
def test_equivalent_forms(generated):
    assert verify_numbers(generated, SOURCE)[0], generated


def test_changed_numbers_are_reported_in_order_once():
    ok, missing = verify_numbers("HR 0.61 (95% CI 0.51-0.76); HR 0.61 again; 1,235 patients.", SOURCE)
    assert not ok
    assert missing == ["0.61", "0.76", "1235"]


def test_sign_must_match_when_the_generated_number_is_signed():
    assert verify_numbers("mean change +2.1", SOURCE)[0]       # "+" is no sign in normal form
    assert not verify_numbers("HR -0.62", SOURCE)[0]


def test_citations_list_markers_and_ordinals_are_not_claims():
    generated = ("1. Survival improved [PMID:98765432] [NCT04567890].\n"
                 "2) See PMID: 11112222 and NCT01112222.\n"
                 "(3) A 2nd analysis confirmed it [PMID:1, PMID:2].")
    assert verify_numbers(generated, SOURCE) == (True, [])


def test_numbers_inside_sentences_are_still_checked_after_markers():
    ok, missing = verify_numbers("1. Median OS was 27.0 months.", SOURCE)
    assert (ok, missing) == (False, ["27"])


def test_empty_generated_text_is_fine():
    assert verify_numbers("", SOURCE) == (True, [])


# --------------------------------------------------------------------------------------------
# find_quote
# --------------------------------------------------------------------------------------------

def test_exact_quote_span_slices_back():
    quote = "Median overall survival was 26.3 vs 22.1 months"
    start, end = find_quote(quote, SOURCE)
    assert SOURCE[start:end] == quote


def test_whitespace_differences_are_tolerated_and_span_covers_original():
    span = find_quote("Grade 3 or higher adverse events occurred in 30% of patients", SOURCE)
    assert span is not None
    assert SOURCE[span[0]:span[1]] == "Grade  3 or higher adverse events occurred in 30%   of patients"
    span = find_quote("(55/123).  Grade 3", SOURCE)   # across the line break
    assert SOURCE[span[0]:span[1]] == "(55/123).\nGrade  3"


def test_nfkc_forms_are_tolerated():
    source = "The\u00a0ORR was 45\u00a0% with \ufb01ne tolerability; dose \uff11\uff10 mg."
    span = find_quote("ORR was 45 % with fine tolerability; dose 10 mg", source)
    assert span is not None
    assert source[span[0]:span[1]].startswith("ORR")
    assert source[span[0]:span[1]].endswith("mg")


def test_combining_marks_compose():
    source = "Caf\u0065\u0301 consumption was not associated with risk."
    start, end = find_quote("Caf\u00e9 consumption", source)
    assert source[start:end] == "Caf\u0065\u0301 consumption"


def test_outer_quotation_marks_are_ignored():
    assert find_quote("\u201cHR 0\u00b762; 95% CI\u201d", SOURCE) is not None
    assert find_quote('"objective response rate"', SOURCE) is not None


@pytest.mark.parametrize("quote", [
    "HR 0.62; 95% CI",                                    # "0·62" in the source: no typographic leeway
    "median overall survival was 26.3 vs 22.1 months",    # case differs
    "Median overall survival was 26.3 versus 22.1 months",  # paraphrase
    "Median overall survival ... 22.1 months",            # ellipsis
    "   ",
    "",
])
def test_not_verbatim(quote):
    assert find_quote(quote, SOURCE) is None


# --------------------------------------------------------------------------------------------
# verify_fields
# --------------------------------------------------------------------------------------------

def test_verify_fields_prunes_what_the_source_does_not_support():
    extraction = {
        "pmid": "12345678",
        "design": "rct",
        "sample_size": 1234,
        "effects": [
            {"measure": "HR", "outcome": "OS", "value": 0.62,
             "ci": {"low": 0.51, "high": 0.74, "level": 95},
             "quote": "HR 0\u00b762; 95% CI, 0.51\u20130.75; P<.001"},
            {"measure": "rate", "value": 47, "quote": "The ORR was 47%"},
            {"measure": "rate", "value": 45.0, "evidence_quote": "objective response rate was 45 % (55/123)"},
        ],
        "summary": "Median OS 26.3 vs 22.1 months.",
        "bad_summary": "Median OS 26.3 vs 21.9 months.",
        "quotes": ["A total of 1,234 patients were randomized.", "Everyone was randomized."],
        "is_randomised": True,
        "notes": None,
    }
    kept, dropped = verify_fields(extraction, SOURCE)
    assert kept == {
        "pmid": "12345678",
        "design": "rct",
        "sample_size": 1234,
        "effects": [
            {"measure": "HR", "outcome": "OS", "value": 0.62,
             "ci": {"low": 0.51, "level": 95},
             "quote": "HR 0\u00b762; 95% CI, 0.51\u20130.75; P<.001"},
            {"measure": "rate"},
            {"measure": "rate", "value": 45.0, "evidence_quote": "objective response rate was 45 % (55/123)"},
        ],
        "summary": "Median OS 26.3 vs 22.1 months.",
        "quotes": ["A total of 1,234 patients were randomized."],
        "is_randomised": True,
        "notes": None,
    }
    assert dropped == [
        {"path": "effects[0].ci.high", "reason": "number 0.74 not in source"},
        {"path": "effects[1].value", "reason": "number 47 not in source"},
        {"path": "effects[1].quote", "reason": "quote not verbatim in source"},
        {"path": "bad_summary", "reason": "numbers not in source: 21.9"},
        {"path": "quotes[1]", "reason": "quote not verbatim in source"},
    ]


def test_verify_fields_leaves_the_input_untouched_and_skips_identifiers():
    extraction = {"record_id": "pubmed:99999999", "nct_ids": ["NCT09999999"], "value": 0.99}
    kept, dropped = verify_fields(extraction, SOURCE)
    assert kept == {"record_id": "pubmed:99999999", "nct_ids": ["NCT09999999"]}
    assert extraction["value"] == 0.99
    assert [d["path"] for d in dropped] == ["value"]


def test_verify_fields_with_explicit_quote_keys_and_non_finite_numbers():
    kept, dropped = verify_fields({"passage": "Everyone was randomized.", "hr": float("nan")}, SOURCE,
                                  quote_keys={"passage"})
    assert kept == {}
    assert [d["path"] for d in dropped] == ["passage", "hr"]
