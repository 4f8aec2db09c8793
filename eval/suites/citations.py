"""citations — are the answers and digests OncoLit writes over a corpus faithful to the records they cite?

    oncolit eval citations --dataset ../shared/data/eval/pubmedqa-dev --backend llamacpp:smollm2-135m [--limit N]

The corpus (PubMedQA abstracts with their conclusions, real PMIDs) is ingested into a fresh catalog and index.
Then, with the configured LLM (or --backend):
  answers  `synthesis.answer.answer(question, …)` for each PubMedQA question (the first --limit);
  digests  `synthesis.digest.build_digest(…)` over the whole catalog window for a fixed set of oncology topics
           (DIGEST_TOPICS), whose overviews are the generated text.
Every output is audited independently of the generator's own bookkeeping, against records read back from the
catalog:
  resolve      share of citations whose record exists in the catalog (must be 1.0: architecture invariant 4)
  string/number checks, per generated sentence and per cited claim of the final text (a claim runs up to its
               citation, so a multi-sentence quote is one claim) (`synthesis.citations.check_sentence` with the cited
               records' catalog text:
               it cites, every number occurs in a cited record, at least half its content words do) — reported
               for the sentences the model generated (before enforcement) and for the final text; numbers alone
               are reported too (`synthesis.verify.verify_numbers`).
  entailment   the judge LLM (--judge; default the same model) is asked whether the cited records support the
               sentence (`eval.prompts.ENTAILMENT_V1`, schema-constrained verdict) — reported separately, since a
               small judge is itself noisy.
  quotes       share of generated sentences the enforcement replaced by a verified quote, or dropped; share of
               final sentences that are verbatim spans of a cited record.
Backend `none` writes extractive answers and quote overviews: the audit then checks the extractive path (it
should pass every check), and entailment is not judged.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from eval import metrics as M
from eval.datasets import detect
from eval.datasets.pubmedqa import load_pubmedqa
from eval.prompts import ENTAILMENT_SCHEMA, ENTAILMENT_V1, fit_passages
from eval.report import SuiteResult
from eval.suites.common import Phases, RunOptions, build_llm, describe_backend, fresh_index, llm_name

# Digest topics: common oncology interests, fixed so that runs compare. (PubMedQA is ~18 % oncology.)
DIGEST_TOPICS = (
    ("Breast cancer", "breast cancer"), ("Lung cancer", "lung cancer"), ("Colorectal cancer", "colorectal cancer"),
    ("Prostate cancer", "prostate cancer"), ("Melanoma and skin cancer", "melanoma skin cancer"),
    ("Haematological malignancies", "lymphoma leukemia myeloma"),
)


class Auditor:
    """Checks sentences against catalog records; caches record texts and judge verdicts."""

    def __init__(self, catalog: Any, judge: Any | None) -> None:
        self.catalog = catalog
        self.judge = judge
        self._texts: dict[str, str | None] = {}
        self.judge_seconds: list[float] = []

    def text(self, record_id: str) -> str | None:
        if record_id not in self._texts:
            from synthesis.readers import record_text

            self._texts[record_id] = record_text(self.catalog.get_record(record_id)) if self.catalog.exists(record_id) \
                else None
        return self._texts[record_id]

    def sentence(self, sentence: str) -> dict[str, Any]:
        from synthesis.citations import check_sentence, citation_ids, strip_citations
        from synthesis.verify import find_quote, verify_numbers

        cited = citation_ids(sentence)
        sources = {rid: t for rid in cited if (t := self.text(rid)) is not None}
        claim = strip_citations(sentence)
        states_number = not verify_numbers(claim, set())[0]
        numbers_ok = verify_numbers(claim, "\n".join(sources.values()))[0] if sources else not states_number
        check = check_sentence(sentence, sources)
        verbatim = any(find_quote(claim.rstrip("."), t) is not None for t in sources.values()) if claim else False
        row: dict[str, Any] = {"sentence": sentence, "citations": cited, "resolved": len(sources),
                               "states_number": states_number, "numbers_ok": numbers_ok, "checks_ok": check.ok,
                               "problems": check.problems, "verbatim_quote": verbatim}
        row["entailed"] = self.entails(claim, sources) if self.judge is not None and sources else None
        return row

    def entails(self, claim: str, sources: dict[str, str]) -> bool | None:
        from synthesis.citations import citation_tag
        from synthesis.prompts import escape_record_text
        from synthesis.prompts_qa import records_block

        passages = fit_passages(list(sources.values()), self.judge.capabilities.max_context, 16)
        block = records_block([(citation_tag(rid), "", p) for rid, p in zip(sources, passages)])
        started = time.perf_counter()
        reply = self.judge.complete(ENTAILMENT_V1.messages(records=block, sentence=escape_record_text(claim)),
                                    max_tokens=16, temperature=0.0, seed=0, json_schema=ENTAILMENT_SCHEMA)
        self.judge_seconds.append(time.perf_counter() - started)
        text = reply.text.lower()
        if "not_supported" in text:
            return False
        if "supported" in text:
            return True
        return None


def claim_units(text: str) -> list[str]:
    """Final output split into cited claims: each unit runs up to and including a citation group (and the full
    stop after it), as `with_citations` writes them, so a multi-sentence quote stays with its one citation.
    Text after the last citation is a unit of its own (an uncited claim, if it says anything)."""
    import re

    from synthesis.citations import CITATION_RE

    groups = re.compile(rf"(?:{CITATION_RE.pattern})(?:\s*(?:{CITATION_RE.pattern}))*", re.IGNORECASE)
    units, start = [], 0
    for match in groups.finditer(text):  # adjacent groups ("[PMID:1] [PMID:2].") cite one claim together
        end = match.end()
        tail = re.match(r"[ \t]*[.;:!?]?", text[end:])
        end += tail.end() if tail else 0
        if text[start:end].strip():
            units.append(text[start:end].strip())
        start = end
    if text[start:].strip():
        units.append(text[start:].strip())
    return units


def share(rows: list[dict[str, Any]], key: str, where: str | None = None) -> float | None:
    pool = [r for r in rows if where is None or r.get(where)]
    values = [r[key] for r in pool if r.get(key) is not None]
    return sum(bool(v) for v in values) / len(values) if values else None


def summarise(generated: list[dict[str, Any]], final: list[dict[str, Any]], replaced: int, dropped: int,
              outputs: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    citations = [(r["resolved"], len(r["citations"])) for r in final]
    total = sum(n for _, n in citations)
    return {
        "outputs": outputs,
        "citations": total,
        "citations_resolve": (sum(res for res, _ in citations) / total) if total else None,
        "generated_sentences": len(generated),
        "generated_checks_ok": share(generated, "checks_ok"),
        "generated_numbers_ok": share(generated, "numbers_ok", where="states_number"),
        "generated_with_numbers": sum(1 for r in generated if r["states_number"]),
        "generated_entailed": share(generated, "entailed"),
        "generated_judged": sum(1 for r in generated if r.get("entailed") is not None),
        "replaced_by_quote": replaced / len(generated) if generated else None,
        "dropped": dropped / len(generated) if generated else None,
        "final_sentences": len(final),
        "final_checks_ok": share(final, "checks_ok"),
        "final_numbers_ok": share(final, "numbers_ok", where="states_number"),
        "final_entailed": share(final, "entailed"),
        "final_verbatim_quotes": share(final, "verbatim_quote"),
        **(extra or {}),
    }


def run(options: RunOptions, *, backend: str = "settings", judge: str | None = None,
        corpus_size: int | None = None, digests: bool = True) -> SuiteResult:
    from eval.datasets.records import article
    from synthesis.answer import answer

    if detect(options.dataset) != "pubmedqa":
        raise ValueError(f"citations builds its corpus and questions from PubMedQA; {options.dataset} is "
                         f"{detect(options.dataset)}")
    phases = Phases()
    with phases("load"):
        everything = load_pubmedqa(options.dataset)
        items = everything[: options.limit] if options.limit is not None else everything
        pool = everything
        if options.limit is not None or corpus_size:
            size = corpus_size or max(100, 10 * len(items))
            chosen = {it.pmid for it in items}
            pool = items + [it for it in everything if it.pmid not in chosen][: max(0, size - len(items))]
        corpus = [article(it.pmid, "", [*zip(it.labels, it.contexts), ("CONCLUSIONS", it.long_answer)]) for it in pool]
    llm = build_llm(options.settings, backend)
    generating = llm.capabilities.generation
    judge_spec = judge if judge is not None else backend
    judge_llm = None
    if generating and judge_spec == backend:
        judge_llm = llm
    elif judge_spec != "none" and judge_spec != backend:
        judge_llm = build_llm(options.settings, judge_spec)
    results: dict[str, Any] = {"backend": describe_backend(backend, options.settings) | {"model_name": llm_name(llm)},
                               "judge": llm_name(judge_llm)}
    items_out: list[dict[str, Any]] = []
    latency: dict[str, list[float]] = {}
    try:
        with fresh_index(options, corpus, phases, name="citations") as indexed:
            auditor = Auditor(indexed.catalog, judge_llm)
            searcher = indexed.searcher()
            generated, final, seconds = [], [], []
            replaced = dropped = insufficient = 0
            with phases("answers"):
                for it in items:
                    a = answer(it.question, searcher, indexed.catalog, llm)
                    seconds.append(a.seconds)
                    insufficient += a.insufficient_evidence
                    replaced += a.replaced
                    dropped += a.dropped
                    gen_rows = [auditor.sentence(s["text"]) | {"kept": s["ok"], "replaced": s["replaced"],
                                                               "dropped": s["dropped"]} for s in a.sentences]
                    fin_rows = [] if a.insufficient_evidence else [
                        auditor.sentence(s) for s in claim_units(a.answer)]
                    generated += gen_rows
                    final += fin_rows
                    items_out.append({"output": "answer", "pmid": it.pmid, "question": it.question, "mode": a.mode,
                                      "insufficient": a.insufficient_evidence, "answer": a.answer,
                                      "generated": gen_rows, "final": fin_rows, "seconds": a.seconds})
            results["answers"] = summarise(generated, final, replaced, dropped, len(items),
                                           {"insufficient_evidence": insufficient / len(items) if items else None,
                                            "latency": M.latency_summary(seconds)})
            latency["answer"] = seconds
            if digests:
                with phases("digest"):
                    results["digests"], digest_items = _digest(indexed.catalog, llm, auditor)
                items_out += digest_items
            if auditor.judge_seconds:
                latency["entailment judge"] = auditor.judge_seconds
    finally:
        if judge_llm is not None and judge_llm is not llm:
            judge_llm.close()
        llm.close()
    rows = []
    for name in ("answers", "digests"):
        r = results.get(name)
        if r:
            rows.append([name, r["outputs"], r["citations"], r["citations_resolve"], r["generated_sentences"],
                         r["generated_checks_ok"], r["generated_numbers_ok"], r["generated_entailed"],
                         r["replaced_by_quote"], r["dropped"], r["final_checks_ok"], r["final_entailed"],
                         r["final_verbatim_quotes"]])
    notes = [f"corpus: {len(corpus)} PubMedQA abstracts (with conclusions, real PMIDs); questions: {len(items)}"]
    if not generating:
        notes.append("backend none: answers are extractive and overviews are quotes; nothing is generated, so the "
                     "'generated' columns are empty and entailment is not judged")
    return SuiteResult(
        suite="citations", metrics=results,
        config={"limit": options.limit, "backend": backend, "judge": judge_spec, "corpus_size": len(corpus),
                "digest_topics": [t for t, _ in DIGEST_TOPICS] if digests else []},
        dataset={"path": str(options.dataset), "kind": "pubmedqa", "questions": len(items), "corpus": len(corpus)},
        timings=phases.seconds,
        plots={"latency": {"answer and judge latency": latency},
               "bars": {"final sentences passing string/number checks":
                        {n: results[n]["final_checks_ok"] or 0.0 for n in ("answers", "digests") if results.get(n)}}},
        tables=[{"title": "Citation faithfulness",
                 "columns": ["output", "n", "citations", "resolve", "generated sentences", "gen. checks ok",
                             "gen. numbers ok", "gen. entailed", "replaced by quote", "dropped", "final checks ok",
                             "final entailed", "final verbatim"], "rows": rows}],
        notes=notes, items=items_out)


def _digest(catalog: Any, llm: Any, auditor: Auditor) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from synthesis.digest import Topic, build_digest, window_after

    window = window_after(catalog, None, 7)
    topics = [Topic(name=name, query=query) for name, query in DIGEST_TOPICS]
    digest = build_digest(catalog, topics, window, period_end=dt.date.today(), llm=llm)
    final, items = [], []
    generated_total = replaced = dropped = 0
    for topic in digest["topics"]:
        ov = topic["overview"]
        rows = [auditor.sentence(s) for s in claim_units(ov["text"])] if ov["text"] else []
        final += rows
        generated_total += ov.get("sentences", 0)
        replaced += ov.get("replaced", 0)
        dropped += ov.get("dropped", 0)
        items.append({"output": "digest", "topic": topic["name"], "overview_kind": ov["kind"], "overview": ov["text"],
                      "items": len(topic["items"]), "final": rows})
    cited = digest.get("cited", [])
    summary = summarise([], final, 0, 0, len(digest["topics"]), {
        "overview_generated_sentences": generated_total,
        "overview_replaced_by_quote": replaced / generated_total if generated_total else None,
        "overview_dropped": dropped / generated_total if generated_total else None,
        "digest_cited_ids": len(cited),
        "digest_cited_resolve": (sum(catalog.exists(r) for r in cited) / len(cited)) if cited else None,
        "items_shown": digest["counts"].get("shown"),
    })
    summary["generated_sentences"] = generated_total
    summary["replaced_by_quote"] = summary["overview_replaced_by_quote"]
    summary["dropped"] = summary["overview_dropped"]
    return summary, items
