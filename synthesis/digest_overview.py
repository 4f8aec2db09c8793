"""A topic's overview when no model writes it: what is new, counted, and the significant results, each a short
clause built from the extracted findings, cited and checked.

Why not quotes. The overview sits above the items; pasting each item's key sentence again ("PURPOSE We did
this retrospective study...") repeats what the reader is about to see. What a clinician scanning a digest
wants from the top of a topic is: how much is new, how much of it is randomised or pooled evidence, and
which results were significant, in one line each:

    12 new records: 2 RCTs, 1 meta-analysis, 3 trial registrations.
    - Progression-free survival: HR 0.45 (95% CI 0.33 to 0.63; p<0.001), lower hazard [PMID:22663011].

The clause is built from one extracted outcome (`synthesis.findings.Outcome`): its name, measure, estimate,
confidence interval and p-value where the extraction found them, and which way the estimate points. Every
clause goes through `synthesis.citations.check_sentence` against the cited record's text (numbers must be
the record's; invariant 4), dropping its p-value, then its interval, when those do not pass; a clause that
still fails is left out. Each kept clause keeps the outcome's verbatim quote (`support`), so the citation
verifier and the web view can show where it came from. The count line is about the digest, not about any
record, so it is kept apart (`summary`) and the checked `text` holds only cited clauses.

When no shown item has a significant result there is nothing worth saying above the items: no overview.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthesis.citations import check_sentence, citation_tag, with_citations
from synthesis.findings import Findings, Outcome
from synthesis.verify import find_quote

RATIO_MEASURES = {"HR": "hazard", "OR": "odds", "RR": "risk"}
SIGNIFICANCE = 0.05
MAX_CLAUSES = 4


@dataclass
class Overview:
    text: str
    kind: str  # generated | extractive | quote | none
    sentences: int = 0
    replaced: int = 0
    dropped: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    summary: str = ""  # extractive: the count line (about the digest, so uncited)
    support: list[dict[str, str]] = field(default_factory=list)  # extractive: clause, record, verbatim quote

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "kind": self.kind, "sentences": self.sentences,
                               "replaced": self.replaced, "dropped": self.dropped, "problems": self.problems}
        if self.error:
            out["error"] = self.error
        if self.kind == "extractive":
            out.update(summary=self.summary, support=self.support)
        return out


# ------------------------------------------------------------------------------------------------
# Significant results
# ------------------------------------------------------------------------------------------------

def _p_significant(o: Outcome) -> bool | None:
    if o.p_value is None:
        return None
    if o.p_comparator in (">", "≥"):
        return False
    return o.p_value < SIGNIFICANCE or (o.p_value == SIGNIFICANCE and o.p_comparator in ("<", "≤"))


def _ci_excludes_null(o: Outcome) -> bool | None:
    if o.ci_low is None or o.ci_high is None:
        return None
    null = 1.0 if o.measure in RATIO_MEASURES else 0.0 if o.measure in (
        "median_difference", "mean_difference", "risk_difference") else None
    if null is None:
        return None
    return o.ci_low > null or o.ci_high < null


def is_significant(o: Outcome) -> bool:
    """A result that points one way (increased/decreased) and says so with statistics: a p-value under 0.05 or
    an interval that excludes no effect; without either, the findings models' confident direction."""
    if o.direction not in ("increased", "decreased") or not o.quote:
        return False
    stats = [s for s in (_p_significant(o), _ci_excludes_null(o)) if s is not None]
    if stats:
        return all(stats)
    return o.source in ("model", "rules+model") and (o.confidence or 0.0) >= 0.5


def _num(value: float) -> str:
    return f"{value:g}"


_DANGLING = re.compile(r"(?:\s+(?:for|of|in|with|and|or|at|to|by|on|the|a|an|vs\.?|versus))+$", re.IGNORECASE)


def _outcome_name(o: Outcome) -> str:
    """The outcome as the record names it, without a dangling "for"/"of" where the tagger cut the phrase."""
    name = " ".join(o.name.split())
    return "" if "(outcome not named)" in name else _DANGLING.sub("", name).rstrip(",;:")


def _ratio_way(o: Outcome) -> str | None:
    """"lower" / "higher" for a ratio below / above 1, by its estimate, else its interval; None if unclear."""
    if o.value is not None and o.value != 1:
        return "lower" if o.value < 1 else "higher"
    if o.ci_low is not None and o.ci_high is not None and (o.ci_high < 1 or o.ci_low > 1):
        return "lower" if o.ci_high < 1 else "higher"
    return None


def clause_variants(o: Outcome) -> list[str]:
    """The result as a clause, fullest first (estimate + interval + p, then without p, then without the interval).

    Arms are left out: the findings models tag intervention and comparator words per sentence, and in a
    sentence comparing mutation groups or naming the drug class they tag the wrong pair. Which way a ratio
    points is read from its numbers, never from the sentence's direction (a model reading "median PFS 4.8 vs
    1.5 months" says increased about a sentence whose HR is 0.45); other measures only say "a significant
    difference", since without the arms "higher" would not say higher in whom."""
    name = _outcome_name(o)
    scale = RATIO_MEASURES.get(o.measure or "")
    ratio = scale is not None
    if scale is not None:
        way = _ratio_way(o)
        if way is None:
            return []
        effect = f"{way} {scale}" if name else f"{scale} ratio {way}"
    else:
        effect = "a significant difference"
    measure = o.measure if o.measure in RATIO_MEASURES or o.measure in ("median", "rate") else ""
    estimate = ""
    if o.value is not None:
        unit = "" if ratio else f" {o.unit}" if o.unit and o.unit != "%" else (o.unit or "")
        estimate = f"{measure + ' ' if measure else ''}{_num(o.value)}{unit}"
    ci = ""
    if o.ci_low is not None and o.ci_high is not None:
        level = f"{_num(o.ci_level)}% " if o.ci_level else ""
        ci = f"{level}CI {_num(o.ci_low)} to {_num(o.ci_high)}"
    p = f"p{o.p_comparator or '='}{_num(o.p_value)}" if o.p_value is not None else ""
    head = (name[0].upper() + name[1:]) if name else ""
    out = []
    for stats in ([ci, p], [ci], [p], []):
        inner = "; ".join(s for s in stats if s)
        numbers = f"{estimate} ({inner})" if estimate and inner else estimate or inner
        if not numbers:
            continue  # "X: a significant difference" with no number says nothing worth reading
        body = ", ".join(b for b in (numbers, effect) if b)
        text = f"{head}: {body}" if head else body[0].upper() + body[1:]
        if text not in out:
            out.append(text)
    return out


def result_clause(rid: str, o: Outcome, source: str) -> str | None:
    """The fullest variant that passes the citation check against the record's text, with its citation."""
    for variant in clause_variants(o):
        sentence = with_citations(variant.rstrip(".") + ".", [rid])
        if check_sentence(sentence, {rid: source}).ok:
            return sentence
    return None


# ------------------------------------------------------------------------------------------------
# The overview
# ------------------------------------------------------------------------------------------------

def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def count_line(designs: Sequence[tuple[str, str]]) -> str:
    """`designs`: (design label, evidence label kind) of every record the topic matched (shown or not)."""
    rcts = sum(d == "rct" and k == "graded" for d, k in designs)
    pooled = sum(d in ("meta_analysis", "systematic_review") and k == "graded" for d, k in designs)
    registrations = sum(k == "registration" for _d, k in designs)
    parts = [p for p in (_plural(rcts, "RCT") if rcts else "", _plural(pooled, "meta-analysis", "meta-analyses")
                         if pooled else "", _plural(registrations, "trial registration") if registrations else "") if p]
    head = _plural(len(designs), "record")
    return f"{head}: {', '.join(parts)}." if parts else f"{head}."


def extractive_overview(items: Sequence[dict[str, Any]], findings: Mapping[str, Findings | None],
                        sources: Mapping[str, str], designs: Sequence[tuple[str, str]], *,
                        max_clauses: int = MAX_CLAUSES) -> Overview:
    """Counts and up to `max_clauses` significant results (one per record, the shown items in their order);
    no overview when none of them has one."""
    support: list[dict[str, str]] = []
    for item in items:
        rid = item["record_id"]
        f = findings.get(rid)
        if f is None or rid not in sources or (item.get("evidence") or {}).get("kind") == "registration":
            continue
        significant = sorted((o for o in f.outcomes if is_significant(o)),
                             key=lambda o: (not o.primary, bool("(outcome not named)" in o.name),
                                            -(o.result_probability or 0.0)))
        for o in significant:
            assert o.quote is not None
            if find_quote(o.quote, sources[rid]) is None:
                continue
            clause = result_clause(rid, o, sources[rid])
            if clause is not None:
                support.append({"record_id": rid, "tag": citation_tag(rid), "clause": clause, "quote": o.quote,
                                "outcome": o.name, "badge": str(item.get("badge", ""))})
                break
        if len(support) >= max_clauses:
            break
    if not support:
        return Overview("", "none")
    text = " ".join(s["clause"] for s in support)
    # `sentences` counts what a model wrote (the eval's "generated" columns): none here.
    return Overview(text, "extractive", summary=count_line(designs), support=support)
