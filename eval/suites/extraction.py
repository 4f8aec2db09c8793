"""extraction — field-level precision/recall/F1 of findings extraction against Evidence Inference, per backend.

    oncolit eval extraction --dataset ../shared/data/eval/evidence-inference [--backend none --backend llamacpp:…]

Each annotated article's abstract becomes an `Article` (title + labelled sections, no publication types) and goes
through `synthesis.extract.extract(record, llm)` — rules only for backend `none`, rules + verified model output
otherwise. Gold comes from the article's ICO prompts (by default only prompts with an evidence span found in the
abstract: annotators read full texts, OncoLit reads abstracts; `--all-prompts` scores every prompt).

Fields and how they are matched (phrases match when at least half of the shorter one's content words — lower-
cased, a plural "s" stripped, stop words dropped — occur in the other; each gold phrase matches once):
  interventions   findings.interventions      vs the distinct prompt interventions of the article
  comparators     findings.comparator         vs the distinct prompt comparators
  outcomes        findings.outcomes[].name    vs the distinct prompt outcomes
  direction       for each gold prompt, the predicted outcome with a direction whose quote lies in (or holds) one of
                  the prompt's evidence spans, else whose name best matches the prompt outcome (rules often read an
                  estimate without naming its outcome: "odds ratio (outcome not named)"); its direction mapped
                  increased -> "significantly increased", decreased -> "significantly decreased", "no significant
                  difference" as is. No matching outcome = no prediction:
                  it lowers recall, not precision. Per-label P/R/F1, macro-F1, accuracy over all prompts, coverage.
  significance    the same, collapsed to significant (increased/decreased) vs not.
  effect sizes    Evidence Inference annotates evidence text, not numbers, so: precision = share of predicted
                  outcome estimates (value, CI bounds, arm values) that occur among the numbers of the article's
                  evidence spans; recall = share of prompts whose evidence holds numbers in which some predicted
                  estimate of the article occurs.
With the findings models (backends `default` and `models`, or any LLM spec with `+models`), three more blocks:
  direction_given_prompt  the standard Evidence Inference task: the ICO prompt is given; the reader ranks the
                  abstract's sentences for it (`FindingsModels.directions_for`), the direction model reads the two best
                  and their votes are mixed by rank score.
                  Rules-only backends: the outcome matched to the prompt as above (their only way to use a prompt).
  evidence_sentence  recall_at_1: the top-ranked sentence for a prompt holds one of its evidence spans (rules-only:
                  ranked by word overlap with the prompt); precision / recall / f1: the sentences called result
                  sentences (rules-only: sentences an estimate was read from) against the sentences holding any
                  evidence span of the article.
  end_to_end_direction  = `direction` above: the prompts matched to the comparisons the extractor found.
  seconds_per_article  mean wall time of `extract()` per article.
Backends: `none` (rules), `models` (rules + findings models), `default` (what `oncolit extract` uses out of the box:
the configured LLM when it is pulled, else none, plus the findings models), any LLM spec (`llamacpp:…`), and
`<spec>+models`.

Direction convention: ours is the first arm against the second or a ratio against 1 (synthesis.findings.Direction);
Evidence Inference's is intervention against comparator. They agree when the abstract names the intervention arm
first, which is the common case; disagreements count as errors.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from eval import metrics as M
from eval.datasets import detect
from eval.datasets.evidence_inference import LABELS, EIPrompt, load_evidence_inference
from eval.report import SuiteResult
from eval.suites.common import Phases, RunOptions, build_llm, describe_backend, llm_name
from synthesis.findings_models.runtime import RESULT_THRESHOLD
from synthesis.text import article_sentences, overlap

DIRECTION_TO_LABEL = {"increased": "significantly increased", "decreased": "significantly decreased",
                      "no significant difference": "no significant difference"}
NONE = "(no prediction)"
MATCH_THRESHOLD = 0.5
_STOP = frozenset("""a an and the of in on at to for with without from by or vs versus group groups arm arms patients
patient subjects participants treatment treated therapy receiving received who which that than after before during
plus alone only control""".split())
_WORD = re.compile(r"[a-z0-9]+(?:[.\-][a-z0-9]+)*")


def content_words(text: str) -> set[str]:
    words = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        words.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return words


def similarity(a: str, b: str) -> float:
    """Overlap of content words divided by the smaller set's size (0 when either is empty)."""
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / min(len(wa), len(wb))


def phrase_match(gold: str, predicted: str) -> bool:
    return similarity(gold, predicted) >= MATCH_THRESHOLD


def distinct(phrases: list[str]) -> list[str]:
    seen: dict[frozenset[str], str] = {}
    for p in phrases:
        key = frozenset(content_words(p))
        if key and key not in seen:
            seen[key] = p
    return list(seen.values())


def _numbers(text: str) -> set[str]:
    from synthesis.verify import source_numbers
    return source_numbers(text)


def _estimates(outcome: Any) -> set[str]:
    from synthesis.rules.numbers import format_value

    values = [outcome.value, outcome.ci_low, outcome.ci_high, *(outcome.arm_values or [])]
    return {format_value(v) for v in values if isinstance(v, (int, float))}


def _flat(text: str) -> str:
    return " ".join(text.split()).lower()


def best_outcome(prompt: EIPrompt, outcomes: list[Any]) -> Any | None:
    """The predicted outcome with a direction that belongs to the prompt: its quote lies inside (or holds) one of
    the prompt's evidence spans, else its name (or quote) best matches the prompt's outcome phrase."""
    evidence = [_flat(e) for e in prompt.evidence if len(e.strip()) >= 10]
    best, best_sim = None, 0.0
    for o in outcomes:
        if o.direction is None:
            continue
        quote = _flat(o.quote or "")
        if quote and len(quote) >= 8 and any(quote in e or e in quote for e in evidence):
            sim = 1.0  # located in the annotated evidence itself
        else:
            sim = max(similarity(prompt.outcome, o.name), similarity(prompt.outcome, o.quote or "") * 0.999)
        if sim > best_sim:
            best, best_sim = o, sim
    return best if best_sim >= MATCH_THRESHOLD else None


def score_article(findings: Any, prompts: list[EIPrompt]) -> dict[str, Any]:
    """Per-article counts for every field, and the per-prompt direction calls."""
    out: dict[str, Any] = {}
    out["interventions"] = M.set_prf(distinct([p.intervention for p in prompts]), list(findings.interventions),
                                     phrase_match)
    out["comparators"] = M.set_prf(distinct([p.comparator for p in prompts]),
                                   [findings.comparator] if findings.comparator else [], phrase_match)
    out["outcomes"] = M.set_prf(distinct([p.outcome for p in prompts]), [o.name for o in findings.outcomes],
                                phrase_match)
    calls = []
    for p in prompts:
        if p.label is None:
            continue
        o = best_outcome(p, list(findings.outcomes))
        calls.append((p, DIRECTION_TO_LABEL.get(o.direction, NONE) if o is not None else NONE, o))
    out["calls"] = calls
    evidence_numbers = {p.prompt_id: set().union(*[_numbers(e) for e in p.evidence]) if p.evidence else set()
                        for p in prompts}
    all_evidence = set().union(*evidence_numbers.values()) if evidence_numbers else set()
    predicted = [_estimates(o) for o in findings.outcomes]
    predicted_values = [v for est in predicted for v in est]
    out["effect_tp_p"] = sum(v in all_evidence for v in predicted_values)
    out["effect_n_p"] = len(predicted_values)
    everything = set().union(*predicted) if predicted else set()
    with_numbers = [pid for pid, nums in evidence_numbers.items() if nums]
    out["effect_tp_r"] = sum(bool(evidence_numbers[pid] & everything) for pid in with_numbers)
    out["effect_n_r"] = len(with_numbers)
    return out


def run(options: RunOptions, *, backends: list[str] | None = None, split: str = "all",
        abstract_only: bool = True) -> SuiteResult:
    from synthesis.extract import extract

    if detect(options.dataset) != "evidence-inference":
        raise ValueError(f"extraction reads the Evidence Inference folder; {options.dataset} is "
                         f"{detect(options.dataset)}")
    backends = backends or ["none"]
    phases = Phases()
    with phases("load"):
        data = load_evidence_inference(options.dataset, split)
        prompts = [p for p in data.prompts if p.in_abstract or not abstract_only]
        by_article: dict[str, list[EIPrompt]] = {}
        for p in prompts:
            by_article.setdefault(p.pmcid, []).append(p)
        article_ids = list(by_article)[: options.limit] if options.limit is not None else list(by_article)
    results: dict[str, Any] = {}
    tables_rows, items = [], []
    confusion: dict[str, Any] = {}
    bars: dict[str, float] = {}
    latency: dict[str, list[float]] = {}
    for spec in backends:
        llm, models = build_extractor(options, spec)
        seconds: list[float] = []
        rows: list[dict[str, Any]] = []
        dropped = Counter()
        try:
            with phases(f"extract[{spec}]"):
                for pmcid in article_ids:
                    article = data.articles[pmcid].record()
                    started = time.perf_counter()
                    result = extract(article, llm, models=models)
                    seconds.append(time.perf_counter() - started)
                    dropped["fields"] += len(result.dropped)
                    row = score_article(result.findings, by_article[pmcid])
                    row.update(score_prompts(article, result.findings, by_article[pmcid], models))
                    rows.append(row)
                    items.append({"backend": spec, "pmcid": pmcid, "seconds": round(seconds[-1], 4),
                                  "interventions": list(result.findings.interventions),
                                  "comparator": result.findings.comparator,
                                  "outcomes": [{"name": o.name, "direction": o.direction, "value": o.value,
                                                "source": o.source} for o in result.findings.outcomes],
                                  "gold": [{"prompt_id": p.prompt_id, "intervention": p.intervention,
                                            "comparator": p.comparator, "outcome": p.outcome, "label": p.label}
                                           for p in by_article[pmcid]],
                                  "calls": [{"prompt_id": p.prompt_id, "gold": p.label, "predicted": label}
                                            for p, label, _ in row["calls"]],
                                  "dropped": len(result.dropped)})
        finally:
            if llm is not None:
                llm.close()
        r = summarise(rows)
        r["backend"] = describe_backend(spec, options.settings) | {
            "model_name": llm_name(llm), "findings_models": models.name if models is not None else None}
        r["seconds_per_article"] = sum(seconds) / len(seconds) if seconds else None
        r["articles"] = len(rows)
        r["llm_fields_dropped_by_verification"] = dropped["fields"]
        r["latency"] = M.latency_summary(seconds)
        results[spec] = r
        latency[spec] = seconds
        tables_rows.append([spec, len(rows), r["interventions"]["f1"], r["comparators"]["f1"], r["outcomes"]["f1"],
                            r["direction_given_prompt"]["macro_f1"], r["evidence_sentence"]["recall_at_1"],
                            r["evidence_sentence"]["f1"], r["direction"]["macro_f1"], r["direction"]["coverage"],
                            r["significance"]["f1"], r["effect_sizes"]["precision"], r["effect_sizes"]["recall"],
                            r["seconds_per_article"]])
        confusion[f"effect direction - {spec}"] = r["direction"].pop("confusion")
        confusion[f"direction given the prompt - {spec}"] = r["direction_given_prompt"].pop("confusion")
        bars[f"{spec} direction macro-F1"] = r["direction"]["macro_f1"] or 0.0
    field_rows = []
    for spec, r in results.items():
        for fld in ("interventions", "comparators", "outcomes"):
            field_rows.append([spec, fld, r[fld]["precision"], r[fld]["recall"], r[fld]["f1"], r[fld]["tp"],
                               r[fld]["fp"], r[fld]["fn"]])
        for label, v in r["direction"]["per_label"].items():
            field_rows.append([spec, f"direction: {label}", v["precision"], v["recall"], v["f1"], None, None,
                               v["support"]])
    n_prompts = sum(len(by_article[a]) for a in article_ids)
    notes = [f"{data.counts.get('prompts', 0)} v2-annotated prompts with a majority label on "
             f"{data.counts.get('articles', 0)} articles; {data.counts.get('prompts_in_abstract', 0)} have evidence "
             "in the "
             f"abstract; scored: {n_prompts} prompts on {len(article_ids)} articles "
             f"({'abstract-evidence prompts only' if abstract_only else 'all prompts'})",
             "phrase match: half of the shorter phrase's content words occur in the other "
             "(see eval/suites/extraction.py)"]
    return SuiteResult(
        suite="extraction", metrics=results,
        config={"limit": options.limit, "backends": backends, "split": split, "abstract_only": abstract_only,
                "match_threshold": MATCH_THRESHOLD},
        dataset={"path": str(options.dataset), "kind": "evidence-inference", "articles": len(article_ids),
                 "prompts": n_prompts, "counts": data.counts},
        timings=phases.seconds,
        plots={"confusion": confusion, "latency": {"extraction latency per article": latency},
               "bars": {"direction macro-F1 by backend": bars}},
        tables=[{"title": "Extraction by backend (F1 unless named)",
                 "columns": ["backend", "articles", "interventions", "comparators", "outcomes",
                             "direction | prompt (macro-F1)", "evidence R@1", "evidence F1",
                             "end-to-end direction (macro-F1)", "direction coverage", "significance F1",
                             "effect-size P", "effect-size R", "s / article"], "rows": tables_rows},
                {"title": "Field-level precision / recall / F1",
                 "columns": ["backend", "field", "precision", "recall", "F1", "tp", "fp", "fn / support"],
                 "rows": field_rows}],
        notes=notes, items=items)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {fld: M.micro_prf(r[fld] for r in rows)
                           for fld in ("interventions", "comparators", "outcomes")}
    calls = [(p.label, pred) for r in rows for p, pred, _ in r["calls"]]
    gold = [g for g, _ in calls]
    pred = [p for _, p in calls]
    matched = [(g, p) for g, p in calls if p != NONE]
    per_label = M.per_class(gold, pred, list(LABELS))
    labels, counts = M.confusion_matrix(gold, pred, [*LABELS, NONE])
    out["direction"] = {
        "n": len(calls), "coverage": len(matched) / len(calls) if calls else None,
        "accuracy": M.accuracy(gold, pred), "accuracy_when_predicted": M.accuracy([g for g, _ in matched],
                                                                                   [p for _, p in matched]),
        "macro_f1": M.macro_f1(gold, pred, list(LABELS)), "per_label": per_label,
        "confusion": {"labels": labels, "counts": counts},
    }
    sig_gold = [g != "no significant difference" for g in gold]
    tp = sum(1 for g, p in calls if p != NONE and g != "no significant difference" and p != "no significant difference")
    fp = sum(1 for g, p in calls if p != NONE and g == "no significant difference" and p != "no significant difference")
    fn = sum(1 for s, (g, p) in zip(sig_gold, calls) if s and (p == NONE or p == "no significant difference"))
    out["significance"] = {**M.prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
    given = [(g, p) for r in rows for g, p in r.get("given_calls", ())]
    labels_g, counts_g = M.confusion_matrix([g for g, _ in given], [p for _, p in given], [*LABELS, NONE])
    out["direction_given_prompt"] = {
        "n": len(given), "accuracy": M.accuracy([g for g, _ in given], [p for _, p in given]),
        "macro_f1": M.macro_f1([g for g, _ in given], [p for _, p in given], list(LABELS)),
        "per_label": M.per_class([g for g, _ in given], [p for _, p in given], list(LABELS)),
        "confusion": {"labels": labels_g, "counts": counts_g}}
    out["end_to_end_direction"] = {k: out["direction"][k] for k in ("n", "coverage", "accuracy", "macro_f1")}
    hits = [h for r in rows for h in r.get("evidence_hits", ())]
    sp = tuple(sum(r.get(k, 0) for r in rows) for k in ("sentence_tp", "sentence_fp", "sentence_fn"))
    out["evidence_sentence"] = {"n": len(hits), "recall_at_1": sum(hits) / len(hits) if hits else None,
                                **M.prf(*sp), "tp": sp[0], "fp": sp[1], "fn": sp[2]}
    tp_p, n_p = sum(r["effect_tp_p"] for r in rows), sum(r["effect_n_p"] for r in rows)
    tp_r, n_r = sum(r["effect_tp_r"] for r in rows), sum(r["effect_n_r"] for r in rows)
    precision = tp_p / n_p if n_p else 0.0
    recall = tp_r / n_r if n_r else 0.0
    out["effect_sizes"] = {"precision": precision, "recall": recall,
                           "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                           "predicted_estimates": n_p, "prompts_with_numbers": n_r}
    return out


# ------------------------------------------------------------------------------------------------
# Backends with the findings models, and the prompt-level scores
# ------------------------------------------------------------------------------------------------

def build_extractor(options: RunOptions, spec: str) -> tuple[Any, Any]:
    """(llm or None, findings models or None) for a backend spec (see the module docstring)."""
    from oncolit.wiring import make_findings_models, make_llm_from_settings

    settings = options.settings
    if spec == "default":  # as `oncolit extract` out of the box: the configured model if pulled, else none
        llm = make_llm_from_settings(settings, extractive_if_missing=True)
        return (llm if llm.capabilities.generation else None), make_findings_models(settings)
    if spec == "models":
        return None, _require_models(settings)
    with_models = spec.endswith("+models")
    base = spec[: -len("+models")] if with_models else spec
    return build_llm(settings, base), (_require_models(settings) if with_models else None)


def _require_models(settings: Any) -> Any:
    from oncolit.wiring import make_findings_models

    models = make_findings_models(settings)
    if models is None:
        raise ValueError("the findings models are not installed (findings.models=none or missing artifacts)")
    return models


def _holds(text: str, evidence: tuple[str, ...]) -> bool:
    from synthesis.finetune.encoder_data import holds_evidence  # the rule the reader's labels were built with

    return holds_evidence(text, evidence)


def score_prompts(article: Any, findings: Any, prompts: list[EIPrompt], models: Any) -> dict[str, Any]:
    """Direction given each prompt, whether the top sentence for it is its evidence, and result-sentence P/R."""
    sentences = [s for s in article_sentences(article) if s.section != "TITLE"]
    labelled = [p for p in prompts if p.label is not None]
    gold_sentences = {s.index for s in sentences if any(_holds(s.text, p.evidence) for p in labelled)}
    given: list[tuple[str, str]] = []
    hits: list[int] = []
    if models is not None:
        reading = models.read_article(article)
        predicted = {r.sentence.index for r in reading.sentences
                     if r.sentence.section != "TITLE" and r.result_probability >= RESULT_THRESHOLD}
        answers = models.directions_for(reading, [(p.intervention, p.comparator, p.outcome) for p in labelled])
        for p, answer in zip(labelled, answers):
            hits.append(int(answer is not None and _holds(answer.sentence.sentence.text, p.evidence)))
            given.append((p.label, DIRECTION_TO_LABEL[answer.direction] if answer else NONE))
    else:
        quoted = [(o.quote or "") for o in findings.outcomes if o.value is not None or o.arm_values]
        predicted = {s.index for s in sentences if any(q and _flat(q) in _flat(s.text) for q in quoted)}
        for p in labelled:
            ranked = sorted(sentences, key=lambda s: -(overlap(p.outcome, s.text) + 0.2 * overlap(p.intervention,
                                                                                                    s.text)))
            hits.append(int(bool(ranked) and _holds(ranked[0].text, p.evidence)))
            o = best_outcome(p, list(findings.outcomes))
            given.append((p.label, DIRECTION_TO_LABEL.get(o.direction, NONE) if o is not None else NONE))
    return {"given_calls": given, "evidence_hits": hits,
            "sentence_tp": len(predicted & gold_sentences), "sentence_fp": len(predicted - gold_sentences),
            "sentence_fn": len(gold_sentences - predicted)}
