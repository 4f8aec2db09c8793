"""Rule-based readers of abstracts: effect estimates, numbers and sample sizes, study design.

Deterministic and span-exact: every result says where in the text it was read, so it can be shown,
quoted, and used to check what an LLM wrote.
"""

from synthesis.rules.design import (
    DESIGN_LABELS,
    Cue,
    Design,
    blinding_from,
    classify_design,
    design_of,
    phase_from_text,
)
from synthesis.rules.effects import (
    OUTCOMES,
    ConfidenceInterval,
    Effect,
    PValue,
    direction_of,
    extract_effects,
    find_p_values,
    outcome_mentions,
    outcome_near,
)
from synthesis.rules.numbers import (
    SampleSize,
    normalise_number,
    numbers_in,
    parse_number,
    sample_sizes,
    total_sample_size,
)

__all__ = [
    "DESIGN_LABELS",
    "OUTCOMES",
    "ConfidenceInterval",
    "Cue",
    "Design",
    "Effect",
    "PValue",
    "SampleSize",
    "blinding_from",
    "classify_design",
    "design_of",
    "direction_of",
    "extract_effects",
    "find_p_values",
    "normalise_number",
    "numbers_in",
    "outcome_mentions",
    "outcome_near",
    "parse_number",
    "phase_from_text",
    "sample_sizes",
    "total_sample_size",
]
