"""Model readings into findings: one outcome per reported comparison, with the numbers the rules read in the same
sentence, verified like everything else.

Why here and not in `synthesis.extract`: extraction runs rules always, the findings models when they are
installed, and an LLM when one is given; each producer has its own small merge step, and this is the models' one.
What it guarantees:
- a comparison's quote is its result sentence, a verbatim span of the clean record text (offsets kept); its
  intervention / comparator / outcome phrases are spans too, so nothing here can invent words;
- numbers come only from the rule readers (`synthesis.rules.effects`), which read spans, and are attached to the
  comparison whose sentence holds them, so a hazard ratio is never paired with the wrong result;
- the direction is the model's, with its calibrated confidence; rule outcomes in sentences the models did not pick
  are kept as the rules read them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from synthesis.findings import Arm, Outcome, Quote
from synthesis.findings_models.runtime import Comparison, Reading
from synthesis.text import content_words, overlap

_ARM_SIZE = re.compile(
    r"(?P<name>[A-Za-z][\w\-+/ ]{1,60}?)\s*(?:group|arm)?\s*\(\s*[nN]\s*=\s*(?P<n>\d[\d,]*)\s*\)"
    r"|(?P<n2>\d[\d,]*)\s+(?:patients|participants|subjects|women|men)\s+(?:were\s+)?(?:randomi[sz]ed|assigned|"
    r"allocated)\s+to\s+(?:receive\s+)?(?P<name2>[A-Za-z][\w\-+/ ]{1,60}?)(?=[,;.]|\s+and\b|\s+or\b|\s+\()")


_ARM_SEPARATORS = re.compile(r"\b(?:to|or|and|with|receive|received|receiving|versus|vs|of|in|the|were|was)\b",
                             re.IGNORECASE)
"""An arm's name is the words after the last of these ("randomised to X (n = 120)" -> "X")."""


@dataclass
class ModelFields:
    """What the models add to a findings record."""

    outcomes: list[tuple[Outcome, tuple[int, int]]]
    consumed_rules: set[int]  # indexes of rule outcomes merged into a comparison
    interventions: list[str]
    comparator: str | None


def _inside(span: tuple[int, int], outer: tuple[int, int]) -> bool:
    return outer[0] <= span[0] and span[1] <= outer[1]


_RATIOS = ("HR", "OR", "RR")


def _main_estimate(found: list[Outcome]) -> Outcome | None:
    """Of the estimates rules read in one sentence, the one a reader quotes: a ratio with its CI, else a ratio,
    else the first with a CI, else the first."""
    for test in (lambda o: o.measure in _RATIOS and o.ci_low is not None, lambda o: o.measure in _RATIOS,
                 lambda o: o.ci_low is not None, lambda o: True):
        match = next((o for o in found if test(o)), None)
        if match is not None:
            return match
    return None


_LEAD = re.compile(r"^(?:(?:at|after|by|during|in|on|over|within|compared\s+(?:with|to)|versus|among|for|of)\b[^,]{0,80},\s*"
                   r"|(?:overall|in\s+addition|moreover|furthermore|however|similarly|also|finally),?\s+)+",
                   re.IGNORECASE)
_VERB = re.compile(r"\s(?:was|were|is|are|did|does|do|had|has|have|showed?|increased|decreased|improved|reduced|"
                   r"remained|differed|differ|tended|declined|rose|fell|significantly|not|did|could|may|might|"
                   r"occurred|reached|favou?red|resulted)\b", re.IGNORECASE)
_DIFFERENCE_IN = re.compile(r"(?:no|similar|significant|any)\s+(?:statistically\s+)?(?:significant\s+)?"
                            r"(?:differences?|changes?|effects?)\s+(?:in|of|on|for)\s+(?:the\s+)?"
                            r"([A-Za-z][\w\- ]{2,60}?)(?=\s+(?:between|among|across|in\s+the|was|were|at|after|"
                            r"from|with)\b|[,;.(]|$)", re.IGNORECASE)
_DETERMINER = re.compile(r"^(?:the|a|an|both|all|no|there)\s+", re.IGNORECASE)


def subject_phrase(sentence: str) -> str | None:
    """What a result sentence is about, as it writes it: its subject before the first verb ("At 6 months, the
    rate of overall survival was 81%..." -> "rate of overall survival"); verbatim, at most 10 words."""
    about = _DIFFERENCE_IN.search(sentence)
    if about and content_words(about.group(1)):
        return about.group(1).strip()
    text = _LEAD.sub("", sentence.strip())
    match = _VERB.search(text)
    if match is None or match.start() < 3:
        return None
    subject = _DETERMINER.sub("", text[:match.start()].strip(" ,;:"))
    words = subject.split()
    if not words or len(words) > 10 or not content_words(subject):
        return None
    return subject if subject in sentence else None


def _name(c: Comparison, rule: Outcome | None) -> str:
    if c.outcome is not None:
        return c.outcome.text
    if rule is not None and not rule.name.endswith("(outcome not named)"):
        return rule.name
    subject = subject_phrase(c.sentence.text)
    if subject:
        return subject
    words = c.sentence.text.split()
    return " ".join(words[:10])


def model_fields(reading: Reading, clean: str, rule_outcomes: list[tuple[Outcome, tuple[int, int]]],
                 primary_name: str | None) -> ModelFields:
    """Comparisons as outcomes (text order), each verified against `clean`; which rule outcomes they absorbed."""
    out: list[tuple[Outcome, tuple[int, int]]] = []
    consumed: set[int] = set()
    for c in reading.comparisons:
        span = (c.sentence.start, c.sentence.end)
        if clean[span[0]:span[1]] != c.sentence.text or not c.sentence.text.strip():
            continue  # blanked (planted) text, or not the clean text: never quote it
        inside = [i for i, (_o, s) in enumerate(rule_outcomes) if _inside(s, span) and i not in consumed]
        consumed.update(inside)
        found = [rule_outcomes[i][0] for i in inside]
        rule = _main_estimate(found)
        name = _name(c, rule)
        numbers = {k: getattr(rule, k) for k in ("measure", "value", "arm_values", "unit", "ci_low", "ci_high",
                                                  "ci_level", "p_value", "p_comparator")} if rule else {}
        if rule is not None and not rule.arm_values:  # "4.8 vs 1.5 months (HR 0.45; ...)": both, one outcome
            arms = next((o for o in found if o.arm_values and o is not rule), None)
            if arms is not None:
                numbers.update(arm_values=arms.arm_values, unit=rule.unit or arms.unit)
                if numbers.get("p_value") is None and arms.p_value is not None:
                    numbers.update(p_value=arms.p_value, p_comparator=arms.p_comparator)
        kind = next((o.kind for o in found if o.kind != "other"), "other")
        # primary: a rule outcome of the primary end point's kind lies in the sentence, or the outcome's name holds
        # every word of the end point the record calls primary ("survival" alone is not "progression-free survival")
        primary = any(o.primary for o in found) if found else bool(
            primary_name and content_words(primary_name) and overlap(primary_name, name) == 1.0)
        outcome = Outcome(
            name=name[:200], kind=kind, **numbers, direction=c.direction, confidence=round(c.confidence, 4),
            intervention=c.intervention.text[:200] if c.intervention else None,
            comparator=c.comparator.text[:200] if c.comparator else None, primary=primary,
            quote=c.sentence.text[:1000], quote_start=span[0], quote_end=span[1],
            result_probability=round(c.result_probability, 4), source="rules+model" if rule else "model")
        out.append((outcome, span))
    return ModelFields(out, consumed, [p.text[:200] for p in reading.interventions],
                       reading.comparator.text[:200] if reading.comparator else None)


def arms_with_sizes(clean: str, interventions: list[str], comparator: str | None) -> list[tuple[Arm, Quote]]:
    """Arms and their sizes as the text states them ("placebo (n = 120)", "120 patients were randomised to
    placebo"); an arm's name is kept verbatim and must share a word with a known intervention or comparator
    when those are known, so a stray "(n = 12)" does not become an arm."""
    known = [p for p in [*interventions, comparator] if p]
    arms: list[tuple[Arm, Quote]] = []
    seen: set[frozenset[str]] = set()
    for match in _ARM_SIZE.finditer(clean):
        name = _ARM_SEPARATORS.split((match.group("name") or match.group("name2") or "").strip())[-1].strip()
        n_text = match.group("n") or match.group("n2")
        words = frozenset(content_words(name))
        if not words or words in seen or not n_text:
            continue
        if known and not any(words & content_words(k) for k in known):
            continue
        seen.add(words)
        quote = Quote(field=f"arms[{len(arms)}]", text=clean[match.start():match.end()], start=match.start(),
                      end=match.end())
        arms.append((Arm(name=name[:200], n=int(n_text.replace(",", "")), quote=quote.text[:1000]), quote))
        if len(arms) >= 6:
            break
    return arms
