"""Rule-based effect extraction: every written form, exact values, spans that slice back, direction.

Sentences are written for these tests in the styles of NEJM, JCO, JAMA and the Lancet; the smoke
test at the end runs the extractors over the real evidence-inference abstracts.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from synthesis.rules.effects import (
    ConfidenceInterval,
    Effect,
    PValue,
    direction_of,
    extract_effects,
    find_p_values,
    outcome_mentions,
)
from synthesis.rules.numbers import normalise_number, parse_number, sample_sizes, total_sample_size


def only(text: str) -> Effect:
    """The single effect in `text`, checked to slice back to its own text."""
    effects = extract_effects(text)
    assert len(effects) == 1, effects
    effect = effects[0]
    assert text[effect.span[0]:effect.span[1]] == effect.text
    return effect


def ci(effect: Effect) -> tuple[float, float, float | None]:
    assert effect.ci is not None
    return effect.ci.low, effect.ci.high, effect.ci.level


def p(effect: Effect) -> tuple[str, float]:
    assert effect.p is not None
    return effect.p.comparator, effect.p.value


# --------------------------------------------------------------------------------------------
# Ratios
# --------------------------------------------------------------------------------------------

def test_jama_style_hr_with_semicolons_and_bare_decimal_p():
    text = "Adding the antibody prolonged overall survival (HR 0.62; 95% CI, 0.51-0.75; P<.001)."
    e = only(text)
    assert (e.measure, e.value) == ("HR", 0.62)
    assert ci(e) == (0.51, 0.75, 95.0)
    assert p(e) == ("<", 0.001)
    assert e.outcome == "OS"
    assert e.direction == "decreased"
    assert e.text == "HR 0.62; 95% CI, 0.51-0.75; P<.001"


def test_nejm_style_hazard_ratio_for_death_with_spelled_out_interval():
    text = ("At the second interim analysis the hazard ratio for death, 0.73 (95% confidence interval "
            "0.59 to 0.89), crossed the efficacy boundary.")
    e = only(text)
    assert (e.measure, e.value, e.outcome, e.direction) == ("HR", 0.73, "OS", "decreased")
    assert ci(e) == (0.59, 0.89, 95.0)
    assert e.p is None
    assert e.text == "hazard ratio for death, 0.73 (95% confidence interval 0.59 to 0.89)"


def test_equals_sign_square_brackets_and_en_dash():
    text = "For progression-free survival, HR = 0.80 [95% CI: 0.70\u20130.91] favoured maintenance."
    e = only(text)
    assert (e.measure, e.value, e.outcome) == ("HR", 0.8, "PFS")
    assert ci(e) == (0.7, 0.91, 95.0)
    assert e.text == "HR = 0.80 [95% CI: 0.70\u20130.91]"


def test_odds_ratio_with_unlabelled_comma_interval():
    text = "Smoking history was associated with response, odds ratio 1.45 (1.10, 1.92)."
    e = only(text)
    assert (e.measure, e.value, e.direction) == ("OR", 1.45, "increased")
    assert ci(e) == (1.1, 1.92, None)
    assert e.text == "odds ratio 1.45 (1.10, 1.92)"


def test_risk_ratio_with_to_interval_and_trailing_p():
    text = "Febrile neutropenia was less frequent with the growth factor: RR 0.5 (0.3 to 0.8), p = 0.004."
    e = only(text)
    assert (e.measure, e.value) == ("RR", 0.5)
    assert ci(e) == (0.3, 0.8, None)
    assert p(e) == ("=", 0.004)
    assert e.text == "RR 0.5 (0.3 to 0.8), p = 0.004"


def test_lancet_middle_dot_decimals_and_unicode_minus_interval():
    text = ("Overall survival favoured the triplet (hazard ratio 0\u00b762 [95% CI 0\u00b751\u20130\u00b775]; "
            "p<0\u00b70001).")
    e = only(text)
    assert (e.measure, e.value, e.outcome) == ("HR", 0.62, "OS")
    assert ci(e) == (0.51, 0.75, 95.0)
    assert p(e) == ("<", 0.0001)


def test_span_closes_only_the_brackets_it_opened():
    text = "Relapse-free survival improved (HR 0.70, 95% CI 0.58 to 0.85; P = .0003) with adjuvant therapy."
    e = only(text)
    assert e.text == "HR 0.70, 95% CI 0.58 to 0.85; P = .0003"
    assert e.outcome == "RFS"
    assert p(e) == ("=", 0.0003)
    text = "Relapse-free survival improved with an HR of 0.70 (95% CI 0.58 to 0.85; P = .0003) overall."
    assert only(text).text == "HR of 0.70 (95% CI 0.58 to 0.85; P = .0003)"


def test_adjusted_ratios_are_flagged():
    e = only("In the multivariable model the adjusted odds ratio was 2.10 (95% CI 1.30-3.40).")
    assert (e.measure, e.value, e.adjusted) == ("OR", 2.1, True)
    e = only("Obesity remained associated with recurrence (aHR 1.31; 95% CI 1.05-1.64).")
    assert (e.measure, e.adjusted) == ("HR", True)


def test_table_style_header_gives_the_ci_level():
    e = only("Event-free survival, HR (95% CI): 0.58 (0.38, 0.88), P = 0.010.")
    assert (e.value, e.outcome) == (0.58, "EFS")
    assert ci(e) == (0.38, 0.88, 95.0)


def test_second_estimate_of_the_same_measure_is_read_when_it_has_its_own_ci():
    text = "The hazard ratios were 0.66 (95% CI 0.52-0.84) and 0.81 (95% CI 0.69-0.95)."
    effects = extract_effects(text)
    assert [(e.measure, e.value) for e in effects] == [("HR", 0.66), ("HR", 0.81)]
    assert [ci(e)[:2] for e in effects] == [(0.52, 0.84), (0.69, 0.95)]
    for e in effects:
        assert text[e.span[0]:e.span[1]] == e.text


def test_ci_level_other_than_95_is_kept():
    e = only("Noninferiority was shown (HR 0.94; 90% CI, 0.80-1.08).")
    assert ci(e) == (0.8, 1.08, 90.0)
    assert e.direction == "no significant difference"


# --------------------------------------------------------------------------------------------
# Direction rules
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "direction"), [
    ("HR 0.62 (95% CI 0.51-0.75)", "decreased"),
    ("HR 1.62 (95% CI 1.21-2.15)", "increased"),
    ("HR 0.92 (95% CI 0.78-1.09)", "no significant difference"),
    ("HR 0.85 (95% CI 0.72-1.00)", "no significant difference"),   # touching 1.0 includes the null
    ("OR 1.40 (95% CI 1.00-1.96)", "no significant difference"),
    ("HR 0.74; P = .02", "decreased"),                               # no CI: p decides
    ("OR 1.30; P = .02", "increased"),
    ("HR 0.90; P = .40", "no significant difference"),
    ("HR 0.88; P = .05", "no significant difference"),               # p equal to 0.05 is not below it
    ("HR 0.88; P < .05", "decreased"),
    ("HR 0.71", None),                                               # neither CI nor p
])
def test_direction_of_ratios(text, direction):
    assert only(text).direction == direction


def test_direction_of_differences_uses_zero_as_null():
    e = only("The mean difference in pain score was \u22121.8 points (95% CI \u22122.9 to \u22120.7).")
    assert (e.measure, e.value, e.unit) == ("mean_difference", -1.8, "points")
    assert ci(e) == (-2.9, -0.7, 95.0)
    assert e.direction == "decreased"
    e = only("Between-group difference 0.4 (95% CI -0.3 to 1.1).")
    assert e.direction == "no significant difference"


def test_direction_function_directly():
    interval = ConfidenceInterval(1.0, 1.4, 95.0, (0, 0))
    assert direction_of("HR", 1.2, interval, None) == "no significant difference"
    significant = PValue("<", 0.001, (0, 0), "P<.001")
    assert direction_of("median", None, None, significant, (26.3, 22.1)) == "increased"
    assert direction_of("rate", None, None, significant, (12.0, 30.0)) == "decreased"
    assert direction_of("rate", 45.0, None, None, (45.0,)) is None


# --------------------------------------------------------------------------------------------
# Medians
# --------------------------------------------------------------------------------------------

def test_median_os_two_arms_shared_unit():
    e = only("median OS 26.3 vs 22.1 months")
    assert (e.measure, e.value, e.arms, e.unit, e.outcome) == ("median", None, (26.3, 22.1), "months", "OS")
    assert e.text == "median OS 26.3 vs 22.1 months"


def test_median_pfs_sentence_with_units_on_both_arms_and_p():
    text = ("The median progression-free survival was 11.2 months versus 5.6 months (P = .03) in favour of "
            "the combination.")
    e = only(text)
    assert (e.arms, e.unit, e.outcome) == ((11.2, 5.6), "months", "PFS")
    assert p(e) == ("=", 0.03)
    assert e.direction == "increased"
    assert e.text == "median progression-free survival was 11.2 months versus 5.6 months (P = .03)"


def test_median_with_arm_labels_and_respectively():
    text = "Median overall survival was 14.1 mo in the olaparib group and 10.2 mo in the placebo group."
    e = only(text)
    assert (e.arms, e.unit) == ((14.1, 10.2), "months")
    e = only("Median event-free survival was 31.0 and 24.5 months, respectively.")
    assert (e.arms, e.outcome) == ((31.0, 24.5), "EFS")
    assert e.text.endswith("respectively")


def test_median_not_reached_is_an_arm_without_value():
    e = only("Median overall survival was not reached versus 19.4 months.")
    assert e.arms == (None, 19.4)


def test_single_median_with_its_interval():
    e = only("The median duration of response was 8.3 months (95% CI, 6.9 to 11.0).")
    assert (e.value, e.arms, e.unit) == (8.3, (8.3,), "months")
    assert ci(e) == (6.9, 11.0, 95.0)


@pytest.mark.parametrize("text", [
    "The median age was 62 years (range, 18-75).",
    "After a median follow-up of 24.3 months, 120 events had occurred.",
    "Median time on treatment was 5 cycles.",
])
def test_medians_that_are_not_outcomes_are_ignored(text):
    assert [e for e in extract_effects(text) if e.measure == "median"] == []


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------

def test_orr_with_sample_size():
    e = only("ORR 45% (n=123)")
    assert (e.measure, e.value, e.unit, e.n, e.events, e.outcome) == ("rate", 45.0, "%", 123, None, "ORR")


def test_objective_response_rate_with_counts():
    e = only("The objective response rate of 45% (55/123) exceeded the prespecified threshold.")
    assert (e.value, e.events, e.n, e.outcome) == (45.0, 55, 123, "ORR")
    assert e.text == "objective response rate of 45% (55/123)"


def test_two_arm_rates_with_p():
    text = "Pathologic complete response rates were 38.5% and 21.0%, respectively (P < 0.001)."
    e = only(text)
    assert (e.arms, e.outcome, e.direction) == ((38.5, 21.0), "pCR", "increased")
    assert p(e) == ("<", 0.001)


def test_grade_3_or_higher_toxicity_rates():
    text = "The incidence of grade 3 or higher adverse events was 30% versus 20% (P=0.12)."
    e = only(text)
    assert (e.arms, e.outcome, e.direction) == ((30.0, 20.0), "grade_3plus_toxicity", "no significant difference")


def test_rate_with_percent_signs_on_its_interval_bounds():
    e = only("The ORR was 31% (95% CI, 22%\u201341%) among the 88 treated patients.")
    assert (e.value, e.outcome) == (31.0, "ORR")
    assert ci(e) == (22.0, 41.0, 95.0)


def test_bare_difference_needs_a_ci_and_percentage_points_make_it_a_risk_difference():
    e = only("The absolute gain was a difference of 6.4 percentage points (95% CI, 1.2 to 11.6).")
    assert (e.measure, e.value, e.unit, e.direction) == ("risk_difference", 6.4, "percentage points", "increased")
    e = only("Fatigue scores showed a difference of 0.3 (95% CI 0.02, 0.6), p = 0.033.")
    assert (e.measure, e.value) == ("mean_difference", 0.3)
    assert extract_effects("There was no difference (P = 0.4) between groups.") == []


def test_landmark_rate_keeps_its_time_point_out_of_the_value():
    e = only("The 3-year overall survival rates were 71% vs 62%.")
    assert (e.arms, e.outcome) == ((71.0, 62.0), "OS")


# --------------------------------------------------------------------------------------------
# p-values
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "comparator", "value"), [
    ("P = .03", "=", 0.03),
    ("p<0.0001", "<", 0.0001),
    ("(P=0.12)", "=", 0.12),
    ("P \u2264 0.05", "\u2264", 0.05),
    ("P <= 0.01", "\u2264", 0.01),
    ("p-value of 0.047", "=", 0.047),
    ("P for interaction = 0.03", "=", 0.03),
    ("p<0\u00b70001", "<", 0.0001),
    ("P < 1.2 \u00d7 10\u22125", "<", 1.2e-5),
    ("P<10^-6", "<", 1e-6),
    ("p = 3e-4", "=", 0.0003),
    ("P > .05", ">", 0.05),
])
def test_p_value_forms(text, comparator, value):
    [found] = find_p_values(f"Result ({text}) seen.")
    assert found.comparator == comparator
    assert found.value == pytest.approx(value)
    assert f"Result ({text}) seen."[found.span[0]:found.span[1]] == found.text


def test_p_significance_threshold():
    assert PValue("<", 0.05, (0, 0), "").significant
    assert not PValue("=", 0.05, (0, 0), "").significant
    assert not PValue("\u2264", 0.05, (0, 0), "").significant
    assert PValue("=", 0.049, (0, 0), "").significant


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("phrase", "label"), [
    ("overall survival", "OS"),
    ("death from any cause", "OS"),
    ("progression-free survival", "PFS"),
    ("disease progression or death", "PFS"),
    ("disease-free survival", "DFS"),
    ("event-free survival", "EFS"),
    ("objective response", "ORR"),
    ("pathologic complete response", "pCR"),
    ("pathological complete response", "pCR"),
    ("grade 3 or higher adverse events", "grade_3plus_toxicity"),
    ("grade \u22653 toxicities", "grade_3plus_toxicity"),
    ("grade 3/4 neutropenia", "grade_3plus_toxicity"),
    ("health-related quality of life", "QoL"),
    ("QoL", "QoL"),
])
def test_outcome_vocabulary(phrase, label):
    assert outcome_mentions(f"We assessed {phrase} in all patients.")[0][0] == label


def test_outcome_abbreviations_keep_their_case():
    assert outcome_mentions("The os temporale and pfs were unrelated.") == []


def test_outcome_after_the_estimate_in_the_same_sentence():
    assert only("The HR was 0.75 (95% CI 0.61-0.92) for disease-free survival.").outcome == "DFS"


def test_outcome_does_not_leak_across_sentences():
    text = "Overall survival was the primary end point. The OR was 1.20 (95% CI 0.90-1.60)."
    assert only(text).outcome is None


# --------------------------------------------------------------------------------------------
# Things that are not effects
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "In this phase 3 trial, patients aged 18-75 years were enrolled between 2015 and 2019.",
    "Grade 3 neutropenia occurred in 12 patients.",
    "Patients with HR+ breast cancer, 45 of whom had nodal disease, were eligible.",
    "Heart rate (HR) was 72 bpm at baseline.",
    "Treatment was given from 2019-2020 at 25 centres [PMID:12345678].",
    "OR 95% CI not reported.",
    "A dose of 1,200 mg was used on days 1-21.",
])
def test_no_false_positive_effects(text):
    assert extract_effects(text) == []


def test_grade_is_not_a_p_value_and_impossible_p_is_rejected():
    assert find_p_values("Grade 3 events; phase 2 part; P = 5 patients") == []


def test_ratio_never_reads_a_percent_or_range():
    """"RR" also abbreviates "response rate": a percentage after it is a rate, not a risk ratio."""
    effects = extract_effects("The response rate (RR) was 45% overall; HR 0.5-0.7 in subgroups.")
    assert [(e.measure, e.value) for e in effects] == [("rate", 45.0)]


@pytest.mark.parametrize("text", [
    "incidence " + "grade 3 " * 400 + "end",
    "median survival " + "(a) " * 400,
    "hazard ratio for " + "vs. " * 400,
    " ".join(["0.5 (0.4-0.6)"] * 1000),
])
def test_repetitive_text_does_not_make_the_patterns_backtrack_exponentially(text):
    started = time.perf_counter()
    extract_effects(text)
    sample_sizes(text)
    assert time.perf_counter() - started < 2.0


# --------------------------------------------------------------------------------------------
# Numbers and sample sizes
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "normal"), [
    ("0\u00b762", "0.62"), (".03", "0.03"), ("\u22122.10", "-2.1"), ("1,234", "1234"),
    ("45.0%", "45"), ("0.80", "0.8"), ("100", "100"), ("\u20130.5", "-0.5"), ("0", "0"),
])
def test_normalise_number(written, normal):
    assert normalise_number(written) == normal
    assert parse_number(written) == float(normal)


def test_normalise_number_rejects_junk():
    with pytest.raises(ValueError):
        normalise_number("abc")


@pytest.mark.parametrize(("text", "value", "kind"), [
    ("A total of 1,234 patients were randomized to the two arms.", 1234, "randomised"),
    ("The analysis included arm B (n = 456).", 456, "n"),
    ("Overall, 456 patients were enrolled at 30 sites.", 456, "enrolled"),
    ("We randomly assigned 300 women with ovarian cancer.", 300, "randomised"),
    ("In total, 812 adults with resected melanoma underwent randomization.", 812, "randomised"),
    ("Of these, 640 patients were evaluable for response.", 640, "analysed"),
])
def test_sample_sizes(text, value, kind):
    [size] = sample_sizes(text)
    assert (size.value, size.kind) == (value, kind)
    assert text[size.span[0]:size.span[1]] == size.text


def test_head_counts_that_are_not_samples():
    assert sample_sizes("Grade 3 rash occurred in 12 patients aged 40-60 years.") == []


def test_total_sample_size_prefers_randomised_over_arm_counts():
    text = "A total of 600 patients were randomized (n = 300 per arm); 580 patients were analysed."
    assert total_sample_size(text) == 600
    assert total_sample_size("No counts here.") is None


# --------------------------------------------------------------------------------------------
# Smoke test on real abstracts
# --------------------------------------------------------------------------------------------

def _abstract_text(row: dict) -> str:
    return "\n".join(f"{s['label']}: {s['text']}" if s.get("label") else s["text"] for s in row["abstract_sections"])


def test_real_abstracts_spans_slice_back_and_coverage(shared_data: Path):
    """Over the evidence-inference RCT abstracts: spans are exact, and a floor on how many yield
    an estimate (about 18% overall and 39% of the oncology ones when written; most of the rest report
    means ± SD, which are out of scope)."""
    rows = [json.loads(line) for line in (shared_data / "eval/evidence-inference/abstracts.jsonl").open()]
    with_effect = oncology = oncology_with_effect = 0
    for row in rows:
        text = _abstract_text(row)
        effects = extract_effects(text)
        for effect in effects:
            assert text[effect.span[0]:effect.span[1]] == effect.text
            if effect.ci is not None:
                assert effect.ci.low <= effect.ci.high
        with_effect += bool(effects)
        if row.get("oncology_keyword_match"):
            oncology += 1
            oncology_with_effect += bool(effects)
    assert with_effect / len(rows) > 0.15
    assert oncology_with_effect / oncology > 0.3


def test_nejm_bracketed_ci_abbreviation() -> None:
    text = "(hazard ratio for disease progression or death, 0.45; 95% confidence interval [CI], 0.33 to 0.63; P<0.001)"
    [effect] = extract_effects(text)
    assert (effect.measure, effect.value, effect.ci.low, effect.ci.high) == ("HR", 0.45, 0.33, 0.63)
    assert effect.p is not None and effect.p.value == 0.001
