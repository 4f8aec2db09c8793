"""qa — PubMedQA-style yes/no/maybe accuracy and macro-F1, from the provided abstract and from OncoLit retrieval.

    oncolit eval qa --dataset ../shared/data/eval/pubmedqa-dev --backend llamacpp:smollm2-135m [--limit 100]

Modes (each a separate score):
  context    the item's own abstract (CONTEXTS: the abstract without its conclusion, as the task defines it) is
             shown to the model with the question.
  retrieval  the dataset's abstracts (same text) are ingested into a fresh catalog and index; the question goes
             through `synthesis.answer.retrieve` (hybrid search + the product's reranking) and the top k records
             are shown instead. Hit@k (is the item's own abstract among them) is reported too.
The model is the configured LLM (or --backend), asked with `eval.prompts.YES_NO_MAYBE_V1` and constrained to the
JSON schema {"answer": enum yes/no/maybe} where the backend supports schemas; an unreadable reply counts as wrong
(its rate is reported). Baseline: always answering the majority class of the evaluated items.
Backend `none` does not generate: only the baseline and retrieval hit rates are reported.

Backend `default` is the product's answer path without a language model (`synthesis.position.take_position`): the
shipped answer classifier reads the question with the abstract laid out as it was trained (result sections first,
`answer_data.evidence_text`), and the findings models quote the result sentence that carries it. `direction-rule`
uses the findings models alone (a significant best-matching comparison -> yes, no difference -> no). Items the
answer classifier was trained on (listed in its model.json) are never scored: they are counted in
`excluded_trained_items`, so on the shared dev file these backends score its held-out half. Context mode only.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from eval import metrics as M
from eval.datasets import detect
from eval.datasets.pubmedqa import ANSWERS, PubMedQAItem, load_pubmedqa
from eval.prompts import YES_NO_MAYBE_SCHEMA, YES_NO_MAYBE_V1, fit_passages
from eval.report import SuiteResult
from eval.suites.common import Phases, RunOptions, build_llm, describe_backend, fresh_index, llm_name

MODES = ("context", "retrieval")
POSITION_BACKENDS = ("default", "direction-rule")
MAX_TOKENS = 16
INVALID = "invalid"


def ask(llm: Any, question: str, records: list[tuple[str, str, str]]) -> tuple[str, float, str]:
    """(answer or "invalid", seconds, raw reply) for one question over (tag, title, passage) records."""
    from synthesis.prompts import escape_record_text
    from synthesis.prompts_qa import records_block

    passages = fit_passages([p for _, _, p in records], llm.capabilities.max_context, MAX_TOKENS)
    block = records_block([(tag, title, p) for (tag, title, _), p in zip(records, passages)])
    messages = YES_NO_MAYBE_V1.messages(question=escape_record_text(" ".join(question.split())), records=block)
    started = time.perf_counter()
    completion = llm.complete(messages, max_tokens=MAX_TOKENS, temperature=0.0, seed=0,
                              json_schema=YES_NO_MAYBE_SCHEMA)
    return parse_answer(completion.text), time.perf_counter() - started, completion.text


def parse_answer(text: str) -> str:
    """The answer in a reply: the JSON field, else a lone yes/no/maybe word; "invalid" otherwise."""
    import json

    try:
        value = json.loads(text)
        if isinstance(value, dict) and str(value.get("answer", "")).strip().lower() in ANSWERS:
            return str(value["answer"]).strip().lower()
    except (json.JSONDecodeError, ValueError):
        pass
    words = set(re.findall(r"\b(yes|no|maybe)\b", text.lower()))
    return words.pop() if len(words) == 1 else INVALID


def score(gold: list[str], predicted: list[str]) -> dict[str, Any]:
    labels, counts = M.confusion_matrix(gold, predicted, [*ANSWERS, INVALID])
    return {"n": len(gold), "accuracy": M.accuracy(gold, predicted),
            "macro_f1": M.macro_f1(gold, predicted, list(ANSWERS)),
            "per_class": M.per_class(gold, predicted, list(ANSWERS)),
            "invalid_rate": (sum(p == INVALID for p in predicted) / len(predicted)) if predicted else None,
            "prediction_distribution": dict(Counter(predicted)), "confusion": {"labels": labels, "counts": counts}}


def run(options: RunOptions, *, backend: str = "settings", modes: tuple[str, ...] = MODES, k: int = 3,
        corpus_size: int | None = None) -> SuiteResult:
    from eval.datasets.records import article

    if detect(options.dataset) != "pubmedqa":
        raise ValueError(f"qa reads PubMedQA (pqal_dev.json); {options.dataset} is {detect(options.dataset)}")
    unknown = set(modes) - set(MODES)
    if unknown:
        raise ValueError(f"unknown qa mode(s) {sorted(unknown)}; choose from {', '.join(MODES)}")
    phases = Phases()
    with phases("load"):
        everything = load_pubmedqa(options.dataset)
        items = everything[: options.limit] if options.limit is not None else everything
    gold = [it.answer for it in items]
    majority = Counter(gold).most_common(1)[0][0]
    results: dict[str, Any] = {"gold_distribution": dict(Counter(gold)),
                               "majority_baseline": {"answer": majority, **_strip(score(gold, [majority] * len(gold)))}}
    if backend in POSITION_BACKENDS:
        return _position_run(options, backend, items, phases)
    llm = build_llm(options.settings, backend)
    results["backend"] = describe_backend(backend, options.settings) | {"model_name": llm_name(llm)}
    generating = llm is not None and llm.capabilities.generation
    records: dict[str, list[dict[str, Any]]] = {}
    latency: dict[str, list[float]] = {}
    confusion: dict[str, Any] = {}
    notes = []
    try:
        if "context" in modes and generating:
            preds, seconds, rows = [], [], []
            with phases("answer[context]"):
                for it in items:
                    answer, spent, raw = ask(llm, it.question, [(f"[PMID:{it.pmid}]", "", it.context_text)])
                    preds.append(answer)
                    seconds.append(spent)
                    rows.append({"pmid": it.pmid, "gold": it.answer, "predicted": answer, "raw": raw[:200],
                                 "seconds": round(spent, 3)})
            results["context"] = score(gold, preds) | {"latency": M.latency_summary(seconds)}
            confusion["PubMedQA from the abstract"] = results["context"].pop("confusion")
            records["context"], latency["context"] = rows, seconds
        if "retrieval" in modes:
            pool = items
            if options.limit is not None:
                size = corpus_size or max(100, 10 * options.limit)
                chosen = {it.pmid for it in items}
                pool = items + [it for it in everything if it.pmid not in chosen][: max(0, size - len(items))]
            elif corpus_size:
                pool = everything[:corpus_size]
            corpus = [article(it.pmid, "", list(zip(it.labels, it.contexts))) for it in pool]
            retrieval = _retrieval_mode(options, phases, corpus, items, llm if generating else None, k)
            results["retrieval"] = retrieval["metrics"]
            if "confusion" in results["retrieval"]:
                confusion["PubMedQA from OncoLit retrieval"] = results["retrieval"].pop("confusion")
            records["retrieval"] = retrieval["rows"]
            if retrieval["seconds"]:
                latency["retrieval (answer only)"] = retrieval["seconds"]
            notes.append(f"retrieval mode corpus: {len(corpus)} abstracts (context without conclusion, no title)")
    finally:
        if llm is not None:
            llm.close()
    if not generating:
        notes.append("backend none does not generate: only the majority baseline and retrieval hit rates are scored")
    rows = [["majority baseline (" + majority + ")", len(gold), results["majority_baseline"]["accuracy"],
             results["majority_baseline"]["macro_f1"], None]]
    for mode in ("context", "retrieval"):
        r = results.get(mode, {})
        if r.get("accuracy") is not None:
            rows.append([f"{llm_name(llm)} — {mode}", r["n"], r["accuracy"], r["macro_f1"], r["invalid_rate"]])
    tables = [{"title": "PubMedQA yes/no/maybe", "columns": ["system", "n", "accuracy", "macro-F1", "invalid"],
               "rows": rows}]
    if "retrieval" in results:
        r = results["retrieval"]
        tables.append({"title": f"Retrieval for QA (top {k})", "columns": ["hit@1", f"hit@{k}", "MRR@" + str(k)],
                       "rows": [[r["hit@1"], r[f"hit@{k}"], r[f"mrr@{k}"]]]})
    items_out = [{"mode": mode, **row} for mode, rows_ in records.items() for row in rows_]
    return SuiteResult(
        suite="qa", metrics=results,
        config={"limit": options.limit, "backend": backend, "modes": list(modes), "k": k, "max_tokens": MAX_TOKENS,
                "prompt_id": YES_NO_MAYBE_V1.id, "corpus_size": corpus_size},
        dataset={"path": str(options.dataset), "kind": "pubmedqa", "items": len(items)},
        timings=phases.seconds,
        plots={"confusion": confusion, "latency": {"answer latency": latency} if latency else {},
               "bars": {"accuracy": {r[0]: r[2] or 0.0 for r in rows}}},
        tables=tables, notes=notes, items=items_out)


def _strip(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "confusion"}


def _retrieval_mode(options: RunOptions, phases: Phases, corpus: list[Any], items: list[PubMedQAItem], llm: Any,
                    k: int) -> dict[str, Any]:
    from synthesis.answer import retrieve

    ranks, preds, seconds, rows = [], [], [], []
    with fresh_index(options, corpus, phases, name="qa") as indexed:
        searcher = indexed.searcher()
        with phases("answer[retrieval]"):
            for it in items:
                started = time.perf_counter()
                candidates = retrieve(it.question, searcher, indexed.catalog)
                retrieve_s = time.perf_counter() - started
                top = candidates[:k]
                ids = [c.record_id.split(":", 1)[1] for c in top]
                rank = next((i + 1 for i, c in enumerate(candidates) if c.record_id == f"pubmed:{it.pmid}"), None)
                ranks.append(rank)
                row: dict[str, Any] = {"pmid": it.pmid, "gold": it.answer, "retrieved": ids, "own_rank": rank,
                                       "retrieve_seconds": round(retrieve_s, 3)}
                if llm is not None:
                    shown = [(f"[PMID:{i}]", c.title, c.text) for i, c in zip(ids, top)]
                    answer, spent, raw = ask(llm, it.question, shown)
                    preds.append(answer)
                    seconds.append(spent)
                    row.update({"predicted": answer, "raw": raw[:200], "seconds": round(spent, 3)})
                rows.append(row)
    metrics: dict[str, Any] = {
        "hit@1": sum(r == 1 for r in ranks) / len(ranks) if ranks else None,
        f"hit@{k}": sum(r is not None and r <= k for r in ranks) / len(ranks) if ranks else None,
        f"mrr@{k}": sum(1 / r for r in ranks if r is not None and r <= k) / len(ranks) if ranks else None,
    }
    if llm is not None:
        metrics.update(score([it.answer for it in items], preds))
        metrics["latency"] = M.latency_summary(seconds)
    return {"metrics": metrics, "rows": rows, "seconds": seconds}


def _position_run(options: RunOptions, backend: str, items: list[PubMedQAItem], phases: Phases) -> SuiteResult:
    """Context mode through the product's position path (see the module docstring)."""
    from oncolit.wiring import make_answer_model, make_findings_models
    from synthesis.finetune.answer_data import evidence_text
    from synthesis.position import take_position

    models = make_findings_models(options.settings)
    answerer = make_answer_model(options.settings) if backend == "default" else None
    if models is None and answerer is None:
        raise ValueError("the findings models are not installed (findings.models=none or missing artifacts)")
    trained = answerer.trained_ids if answerer is not None else set()
    scored = [it for it in items if it.pmid not in trained]
    gold = [it.answer for it in scored]
    preds, seconds, rows = [], [], []
    with phases("answer[context]"):
        for it in scored:
            started = time.perf_counter()
            text = evidence_text(list(zip(it.labels, it.contexts)))
            found = take_position(it.question, text, answerer=answerer, models=models, force=True,
                                  record_id=f"pubmed:{it.pmid}")
            spent = time.perf_counter() - started
            answer = found.answer if found else INVALID
            preds.append(answer)
            seconds.append(spent)
            rows.append({"pmid": it.pmid, "gold": it.answer, "predicted": answer, "seconds": round(spent, 4),
                         "confidence": found.confidence if found else None,
                         "quote": found.quote if found else None, "direction": found.direction if found else None})
    majority = Counter(gold).most_common(1)[0][0] if gold else "yes"
    results: dict[str, Any] = {
        "gold_distribution": dict(Counter(gold)), "excluded_trained_items": len(items) - len(scored),
        "majority_baseline": {"answer": majority, **_strip(score(gold, [majority] * len(gold)))},
        "backend": {"spec": backend, "answer_model": answerer.name if answerer else None,
                    "findings_models": models.name if models else None}}
    results["context"] = score(gold, preds) | {"latency": M.latency_summary(seconds)}
    confusion = {"PubMedQA from the abstract": results["context"].pop("confusion")}
    results["accuracy"], results["macro_f1"] = results["context"]["accuracy"], results["context"]["macro_f1"]
    table = [["majority baseline (" + majority + ")", len(gold), results["majority_baseline"]["accuracy"],
              results["majority_baseline"]["macro_f1"], None],
             [f"{backend} — context", len(gold), results["accuracy"], results["macro_f1"],
              results["context"]["invalid_rate"]]]
    return SuiteResult(
        suite="qa", metrics=results,
        config={"limit": options.limit, "backend": backend, "modes": ["context"]},
        dataset={"path": str(options.dataset), "kind": "pubmedqa", "items": len(items), "scored": len(scored)},
        timings=phases.seconds,
        plots={"confusion": confusion, "latency": {"answer latency": {"context": seconds}},
               "bars": {"accuracy": {r[0]: r[2] or 0.0 for r in table}}},
        tables=[{"title": "PubMedQA yes/no/maybe (items the answer model never saw)",
                 "columns": ["system", "n", "accuracy", "macro-F1", "invalid"], "rows": table}],
        notes=[f"{len(items) - len(scored)} items the answer classifier was trained on were left out"],
        items=[{"mode": "context", **row} for row in rows])
