"""Evaluate a fine-tuned run (or its base, or any registry model) on a held-out split of its dataset.

    oncolit finetune eval RUN [--model tuned|base|teacher-logged|qwen2.5-coder-1.5b] [--backend llamacpp|transformers]

Decoding is greedy (temperature 0, seed 0) with a fixed thread count, and llama.cpp constrains the reply to the
task's JSON schema (the PubMedQA answer is an enum, so the answer is always one of yes/no/maybe), so the same
split gives the same numbers every time. Results go to `<run>/eval/<split>-<model>-<backend>.json` (metrics,
the settings that produced them, the code commit) with the per-item predictions beside them (`.items.jsonl`).

Metrics
- pubmedqa: accuracy, macro-F1 over yes/no/maybe, the confusion matrix (rows gold, columns predicted), the
  always-"yes" baseline on the same items; for the rationale: share with the item's `[PMID:…]` citation and
  share whose numbers all occur in the cited record (architecture invariant 4).
- answers: the product's answer prompt and reply parser; answered-vs-insufficient accuracy and macro-F1,
  share of generated sentences that pass the product's citation check against the records shown, share of
  answerable items with a passing sentence that cites the item's own record, unparsed replies.
- extraction: runs the product path, `synthesis.extract.extract(record, llm)`, on each held-out record.
  verified-field rate = claims the verifier kept / claims the model made (strings and numbers; see
  `data.claim_paths`), on every held-out record the teacher was asked about (kept or not).
  field F1 = micro F1 of the verified claims against the dataset's target (teacher, verified, with the
  authors' conclusion), as normalised facts: text fields lower-cased with punctuation collapsed, numbers
  exact, outcomes as (value | ci_low | ci_high | p_value | direction | kind) facts regardless of their order.
- throughput: items (records) per minute and generated tokens per second, wall clock on this machine.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from synthesis.finetune.data import (
    ANSWERS,
    claim_paths,
    evidence_schema,
    git_commit,
    llm_fields,
    load_split,
    pubmedqa_schema,
    read_jsonl,
    unverified,
    verified_answer,
)
from synthesis.llm.base import LLM, BaseLLM, Capabilities, Completion, LLMError

Say = Callable[[str], None]
_CITATION = re.compile(r"\[PMID:(\d+)\]")


# ------------------------------------------------------------------------------------------------
# Classification metrics
# ------------------------------------------------------------------------------------------------

def classification_metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str] = ANSWERS) -> dict[str, Any]:
    """Accuracy, macro-F1 over `labels` (a prediction outside them counts as wrong), confusion matrix."""
    n = len(gold)
    confusion = {g: {p: 0 for p in [*labels, "invalid"]} for g in labels}
    for g, p in zip(gold, pred):
        confusion[g][p if p in labels else "invalid"] += 1
    per_class = {}
    for label in labels:
        tp = confusion[label][label]
        fp = sum(confusion[g][label] for g in labels if g != label)
        fn = sum(confusion[label][p] for p in confusion[label] if p != label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": tp + fn}
    return {"n": n, "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / n, 4) if n else None,
            "macro_f1": round(sum(c["f1"] for c in per_class.values()) / len(labels), 4),
            "per_class": per_class, "confusion": confusion,
            "predicted": dict(Counter(p if p in labels else "invalid" for p in pred))}


def parse_choice(text: str, key: str, choices: Sequence[str]) -> str:
    """The value of `key` in a JSON reply when it is one of `choices`; else the first choice word in the text;
    else "invalid" (backends without a grammar can answer anything)."""
    try:
        value = json.loads(text).get(key)
        if value in choices:
            return value
    except (json.JSONDecodeError, AttributeError):
        pass
    match = re.search(r"\b(" + "|".join(re.escape(c) for c in sorted(choices, key=len, reverse=True)) + r")\b",
                      text.lower())
    return match.group(1) if match else "invalid"


# ------------------------------------------------------------------------------------------------
# Per task
# ------------------------------------------------------------------------------------------------

def eval_pubmedqa(examples: list[dict[str, Any]], llm: LLM, *, say: Say, max_tokens: int = 96,
                  sources: dict[str, str] | None = None,
                  schema: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from synthesis.verify import verify_numbers

    schema = (schema or pubmedqa_schema()) if llm.capabilities.json_schema else None
    items, gold, pred = [], [], []
    seconds = tokens = 0.0
    for i, ex in enumerate(examples):
        completion = llm.complete(ex["messages"], max_tokens=max_tokens, temperature=0.0, seed=0, json_schema=schema)
        seconds += completion.seconds
        tokens += completion.tokens_out
        answer = parse_choice(completion.text, "answer", ANSWERS)
        try:
            rationale = str(json.loads(completion.text).get("rationale") or "")
        except (json.JSONDecodeError, AttributeError):
            rationale = completion.text
        pmid = ex["record_id"].split(":", 1)[1]
        cited = _CITATION.findall(rationale)
        source = (sources or {}).get(ex["record_id"], ex["messages"][-1]["content"])
        numbers_ok = verify_numbers(rationale, source)[0] if rationale else False
        items.append({"id": ex["id"], "gold": ex["label"], "pred": answer, "rationale": rationale[:400],
                      "cites_record": cited == [pmid] or (pmid in cited and set(cited) == {pmid}),
                      "numbers_verified": numbers_ok, "seconds": round(completion.seconds, 3)})
        gold.append(ex["label"])
        pred.append(answer)
        if (i + 1) % 10 == 0:
            say(f"{i + 1}/{len(examples)}: accuracy so far {sum(g == p for g, p in zip(gold, pred)) / len(gold):.3f}")
    metrics = classification_metrics(gold, pred)
    always_yes = classification_metrics(gold, ["yes"] * len(gold))
    metrics["always_yes"] = {"accuracy": always_yes["accuracy"], "macro_f1": always_yes["macro_f1"]}
    metrics["rationale"] = {"cites_record": _share(items, "cites_record"),
                            "numbers_verified": _share(items, "numbers_verified")}
    metrics["throughput"] = _throughput(len(items), seconds, tokens)
    return metrics, items


def eval_answers(examples: list[dict[str, Any]], llm: LLM, *, say: Say, record_texts: dict[str, str],
                 max_tokens: int = 256) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The answer prompt as the product sends it, the reply read as the product reads it
    (`synthesis.replies`) and checked as the product checks it (`check_sentence` against the
    whole text of the records shown)."""
    from synthesis.citations import check_sentence, split_sentences
    from synthesis.prompts_qa import answer_schema
    from synthesis.replies import cited_sentences, parse_reply

    items, gold, pred = [], [], []
    seconds = tokens = 0.0
    for i, ex in enumerate(examples):
        shown = [ex["record_id"]] * (ex["label"] == "answered") + list(ex.get("context_ids", []))
        tags = sorted(set(_CITATION.findall(ex["messages"][-1]["content"])))
        schema = answer_schema([f"[PMID:{t}]" for t in tags]) if llm.capabilities.json_schema else None
        completion = llm.complete(ex["messages"], max_tokens=max_tokens, temperature=0.0, seed=0, json_schema=schema)
        seconds += completion.seconds
        tokens += completion.tokens_out
        data = parse_reply(completion.text, "answer_sentences")
        # as the product does: a reply with no JSON at all is prose, checked sentence by sentence
        sentences = split_sentences(completion.text) if data is None else cited_sentences(data, "answer_sentences")
        parsed, data = data is not None, data or {}
        sources = {rid: record_texts[rid] for rid in shown if rid in record_texts}
        checks = [check_sentence(s, sources) for s in sentences]
        says_insufficient = bool(data.get("insufficient")) or not sentences
        gold.append(ex["label"])
        pred.append("insufficient" if says_insufficient else "answered")
        items.append({"id": ex["id"], "gold": ex["label"], "pred": pred[-1], "sentences": len(sentences),
                      "sentences_ok": sum(c.ok for c in checks),
                      "cites_own_record": any(ex["record_id"] in c.citations for c in checks if c.ok),
                      "parsed": parsed, "seconds": round(completion.seconds, 3)})
        if (i + 1) % 10 == 0:
            say(f"{i + 1}/{len(examples)}: sentences passing the check so far "
                f"{sum(it['sentences_ok'] for it in items)}/{sum(it['sentences'] for it in items)}")
    metrics = classification_metrics(gold, pred, ("answered", "insufficient"))
    generated = sum(it["sentences"] for it in items)
    answerable = [it for it in items if it["gold"] == "answered"]
    metrics.update({
        "sentences": generated,
        "sentences_pass_check": round(sum(it["sentences_ok"] for it in items) / generated, 4) if generated else None,
        "answerable_with_a_checked_citation_of_its_record": _share(answerable, "cites_own_record"),
        "unparsed_replies": sum(not it["parsed"] for it in items),
        "throughput": _throughput(len(items), seconds, tokens),
    })
    return metrics, items


def eval_evidence(examples: list[dict[str, Any]], llm: LLM, *, say: Say,
                  max_tokens: int = 160) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from synthesis.verify import find_quote
    from synthesis.finetune.data import DIRECTIONS

    schema = evidence_schema() if llm.capabilities.json_schema else None
    items, gold, pred, seconds, tokens = [], [], [], 0.0, 0.0
    for ex in examples:
        completion = llm.complete(ex["messages"], max_tokens=max_tokens, temperature=0.0, seed=0, json_schema=schema)
        seconds, tokens = seconds + completion.seconds, tokens + completion.tokens_out
        direction = parse_choice(completion.text, "direction", DIRECTIONS)
        try:
            evidence = str(json.loads(completion.text).get("evidence") or "")
        except (json.JSONDecodeError, AttributeError):
            evidence = ""
        verbatim = bool(evidence) and find_quote(evidence, ex["messages"][-1]["content"]) is not None
        items.append({"id": ex["id"], "gold": ex["label"], "pred": direction, "evidence_verbatim": verbatim})
        gold.append(ex["label"])
        pred.append(direction)
    metrics = classification_metrics(gold, pred, DIRECTIONS)
    metrics["evidence_verbatim"] = _share(items, "evidence_verbatim")
    metrics["throughput"] = _throughput(len(items), seconds, tokens)
    return metrics, items


def _norm_text(value: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", value.lower()))


def facts(answer: dict[str, Any]) -> Counter[tuple[str, str]]:
    """An LLM findings answer as a multiset of comparable facts (see the module docstring): every string (except
    outcome names and quotes, whose extent varies) and number under the schema's keys, outcome enums but "other"."""
    out: Counter[tuple[str, str]] = Counter()
    if not isinstance(answer, dict):
        return out
    top, sub = llm_fields()

    def fact(key: str, value: Any) -> None:
        if isinstance(value, str) and value.strip():
            out[(key, _norm_text(value))] += 1
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[(key, repr(float(value)))] += 1

    for key in top:
        value = answer.get(key)
        if key == "outcomes" and isinstance(value, list):
            for outcome in value:
                if not isinstance(outcome, dict):
                    continue
                for k in sub:
                    if k in ("name", "quote") or (k in ("kind", "measure") and outcome.get(k) == "other"):
                        continue
                    fact(f"outcome.{k}", outcome.get(k))
        elif isinstance(value, list):
            for v in value:
                fact(key, v)
        else:
            fact(key, value)
    return out


class LoggedReply(BaseLLM):
    """One reply the teacher gave while the dataset was built (`labels.jsonl`: the raw JSON `extract()` got
    from it, greedy, with its wall time and tokens), served again. Scoring these replies with the same code
    as a live model gives the teacher's numbers on the held-out records without re-running a 1.5B model for
    an hour; `--model <teacher> --limit N` re-measures its speed live beside the student's."""

    capabilities = Capabilities(json_schema=True, streaming=False, max_context=32768)

    def __init__(self, row: dict[str, Any], name: str):
        self.row, self.name = row, name

    def complete(self, messages: Sequence[Any], **kwargs: Any) -> Completion:
        answer = self.row.get("answer")
        return Completion(text=json.dumps(answer) if answer is not None else "", tokens_in=self.row["tokens_in"],
                          tokens_out=self.row["tokens_out"], seconds=self.row["seconds"])


def eval_extraction(examples: list[dict[str, Any]], llm: LLM | None, *, say: Say,
                    extra_records: list[dict[str, Any]] | None = None,
                    logged: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`examples` carry a target (F1 and verified rate); `extra_records` (teacher rejected) only the verified rate.
    With `logged` (record id -> labels.jsonl row), the teacher's logged replies are scored instead of `llm`
    and the time is the logged generation time."""
    from ingest.records.article import Article
    from synthesis.extract import extract
    from synthesis.finetune.data import RecordingLLM

    items = []
    tp = n_pred = n_gold = claims = kept = parse_failures = 0
    seconds = tokens = 0.0
    rows = [(ex, True) for ex in examples] + [(r, False) for r in (extra_records or [])]
    for i, (row, has_target) in enumerate(rows):
        article = Article.model_validate(row["record"])
        recorder = RecordingLLM(LoggedReply(logged[row["record_id"]], "teacher-logged") if logged else llm)
        started = time.perf_counter()
        result = extract(article, recorder)
        seconds += recorder.last[1].seconds if logged and recorder.last else time.perf_counter() - started
        tokens += result.tokens.get("out", 0)
        try:
            answer = json.loads(recorder.last[1].text) if recorder.last else None
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            parse_failures += 1
            answer = {}
        paths = claim_paths(answer)
        gone = unverified(paths, result.dropped)
        claims, kept = claims + len(paths), kept + len(paths) - len(gone)
        item = {"record_id": row["record_id"], "claims": len(paths), "verified": len(paths) - len(gone),
                "has_target": has_target}
        if has_target:
            pred, gold = facts(verified_answer(answer, result.dropped)), facts(json.loads(row["target"]))
            overlap = sum((pred & gold).values())
            tp, n_pred, n_gold = tp + overlap, n_pred + sum(pred.values()), n_gold + sum(gold.values())
            item.update({"facts_pred": sum(pred.values()), "facts_gold": sum(gold.values()), "facts_match": overlap})
        items.append(item)
        if (i + 1) % 5 == 0:
            say(f"{i + 1}/{len(rows)}: verified-field rate so far {kept / max(claims, 1):.3f}")
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    metrics = {
        "records": len(rows), "records_with_target": len(examples),
        "claims": claims, "claims_verified": kept,
        "verified_field_rate": round(kept / claims, 4) if claims else None,
        "claims_per_record": round(claims / len(rows), 2) if rows else None,
        "parse_failures": parse_failures,
        "field_precision": round(precision, 4), "field_recall": round(recall, 4),
        "field_f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
        "throughput": _throughput(len(rows), seconds, tokens),
    }
    return metrics, items


def _share(items: list[dict[str, Any]], key: str) -> float | None:
    return round(sum(bool(i[key]) for i in items) / len(items), 4) if items else None


def _throughput(n: int, seconds: float, tokens: float) -> dict[str, Any]:
    return {"items": n, "seconds": round(seconds, 1),
            "items_per_minute": round(60 * n / seconds, 2) if seconds else None,
            "tokens_out_per_second": round(tokens / seconds, 2) if seconds else None}


# ------------------------------------------------------------------------------------------------
# A run
# ------------------------------------------------------------------------------------------------

def find_run(run: str | Path, runs_root: Path) -> Path:
    path = Path(run)
    if (path / "config.json").is_file():
        return path
    if (runs_root / str(run) / "config.json").is_file():
        return runs_root / str(run)
    raise FileNotFoundError(f"no run {run!r}: give a run directory or a run name under {runs_root}")


def make_eval_llm(run_dir: Path, model: str, backend: str, *, threads: int, n_ctx: int = 4096) -> LLM:
    """The model to evaluate: "tuned" (this run's adapter), "base" (its base, untuned), or a registry name."""
    from synthesis.llm import make_llm
    from synthesis.llm.registry import REGISTRY

    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    base_file = Path(config["base_path"]) / config["gguf_file"] if config.get("gguf_file") else Path(config["base_path"])
    if model in REGISTRY:
        models_dir = Path(config["models_dir"]) if config.get("models_dir") else base_file.parent
        return make_llm(backend, model, models_dir, **_backend_options(backend, threads, n_ctx))
    if model not in ("tuned", "base"):
        raise LLMError(f"--model must be tuned, base or a registry name ({', '.join(REGISTRY)}), not {model!r}")
    if backend == "llamacpp":
        from synthesis.llm.llamacpp import LlamaCppLLM
        path = base_file
        if model == "tuned":
            path = run_dir / "model.gguf"
            if not path.is_file():
                from synthesis.finetune.export_gguf import export_merged
                export_merged(base_file, run_dir / "adapter", path)
        return LlamaCppLLM(path, n_ctx=n_ctx, n_threads=threads, name=f"llamacpp:{run_dir.name}-{model}")
    if backend == "transformers":
        from synthesis.llm.transformers_backend import TransformersLLM
        return TransformersLLM(base_file, adapter_dir=run_dir / "adapter" if model == "tuned" else None,
                               threads=threads, dtype="float32", name=f"transformers:{run_dir.name}-{model}")
    raise LLMError(f"backend {backend!r} cannot evaluate a run; use llamacpp or transformers")


def _backend_options(backend: str, threads: int, n_ctx: int) -> dict[str, Any]:
    if backend == "llamacpp":
        return {"n_threads": threads, "n_ctx": n_ctx, "verify_hash": False}
    if backend == "transformers":
        return {"threads": threads, "dtype": "float32"}
    return {}


def evaluate_run(run: str | Path, *, runs_root: Path, split: str = "test", model: str = "tuned",
                 backend: str = "llamacpp", limit: int | None = None, threads: int = 1, n_ctx: int = 4096,
                 include_rejected: bool = True, say: Say | None = None, llm: LLM | None = None,
                 max_tokens: int | None = None) -> dict[str, Any]:
    """Evaluate one model on one split of the run's dataset; writes and returns the result document."""
    say = say or (lambda _m: None)
    run_dir = find_run(run, runs_root)
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    data_dir = Path(config["data_dir"])
    card = json.loads((data_dir / "card.json").read_text(encoding="utf-8"))
    task = card["task"]
    examples = load_split(data_dir, split)[:limit] if limit else load_split(data_dir, split)
    if not examples:
        raise ValueError(f"split {split!r} of {data_dir} is empty")
    if model == "teacher-logged":
        if task != "extraction":
            raise LLMError("--model teacher-logged scores the teacher's logged replies: extraction datasets only")
        teacher = (card.get("teacher") or {}).get("model", "teacher")
        llm, backend = LoggedReply({}, f"{teacher} (logged replies)"), "logged"
    own_llm = llm is None
    started = time.perf_counter()
    llm = llm or make_eval_llm(run_dir, model, backend, threads=threads, n_ctx=n_ctx)
    load_seconds = time.perf_counter() - started
    try:
        if task == "pubmedqa":
            schema = (card.get("prompt") or {}).get("schema")  # the reply shape the dataset was built with
            rationale_first = bool(schema) and next(iter(schema["properties"])) == "rationale"
            metrics, items = eval_pubmedqa(examples, llm, say=say, schema=schema,
                                           max_tokens=max_tokens or (128 if rationale_first else 96))
        elif task == "answers":
            from synthesis.finetune.data import pubmedqa_record_text
            pqal = json.loads(Path(card["sources"]["pqal"]["path"]).read_text(encoding="utf-8"))
            texts = {f"pubmed:{pmid}": pubmedqa_record_text(item) for pmid, item in pqal.items()}
            metrics, items = eval_answers(examples, llm, say=say, record_texts=texts, max_tokens=max_tokens or 256)
        elif task == "evidence":
            metrics, items = eval_evidence(examples, llm, say=say, max_tokens=max_tokens or 160)
        elif task == "extraction":
            extra = [r for r in read_jsonl(data_dir / f"rejected_{split}.jsonl")] if include_rejected else []
            logged = ({r["record_id"]: r for r in read_jsonl(data_dir / "labels.jsonl")}
                      if model == "teacher-logged" else None)
            metrics, items = eval_extraction(examples, llm, say=say, extra_records=extra[:limit] if limit else extra,
                                             logged=logged)
        else:
            raise ValueError(f"unknown task {task!r}")
    finally:
        if own_llm:
            llm.close()
    document = {"run": str(run_dir), "task": task, "split": split, "model": model, "backend": backend,
                "llm": llm.name, "limit": limit, "threads": threads, "max_tokens": max_tokens, "load_seconds": round(load_seconds, 1),
                "metrics": metrics, "data_card_sha256": config.get("data_card_sha256"),
                "code_commit": git_commit(), "decoding": {"temperature": 0.0, "seed": 0, "constrained":
                                                         llm.capabilities.json_schema}}
    out = run_dir / "eval"
    out.mkdir(exist_ok=True)
    stem = f"{split}-{model}-{backend}" + (f"-n{limit}" if limit else "") + (f"-t{max_tokens}" if max_tokens else "")
    (out / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with (out / f"{stem}.items.jsonl").open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    return document


def without_timing(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics minus wall-clock numbers: what must be identical between two runs of the same eval."""
    return {k: v for k, v in metrics.items() if k != "throughput"}
