"""`oncolit finetune …`: build datasets, train LoRA adapters, evaluate and export them."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from oncolit.cli.common import JsonOpt, console, emit, get_settings, open_catalog

app = typer.Typer(help="Fine-tuning: datasets from real labels and verified teacher outputs, LoRA training, "
                       "held-out evaluation, export to llama.cpp.", no_args_is_help=True)

DEFAULT_SHARED = Path("../shared/data/eval")


def _say(message: str) -> None:
    console.print(message, markup=False, highlight=False)


def finetune_dir() -> Path:
    return get_settings().data_dir / "finetune"


@app.command("build-data")
def build_data(
    task: str = typer.Argument(..., help="pubmedqa | answers | extraction | evidence | rerank (the reranker's "
                                         "pairs; --source: the shared data root) | findings (the encoders' "
                                         "reader/ and direction/ sets)"),
    source: str = typer.Option(None, "--source", help="pubmedqa, answers: pqal_dev.json; evidence: the Evidence Inference "
                                                      "folder; extraction: 'catalog' or Evidence Inference "
                                                      "abstracts.jsonl."),
    out: Path = typer.Option(None, "--out", help="Dataset directory (default <data dir>/finetune/data/TASK)."),
    teacher: str = typer.Option("qwen2.5-coder-1.5b", "--teacher", help="Teacher model for extraction labels."),
    teacher_backend: str = typer.Option("llamacpp", "--teacher-backend", help="llamacpp | openai | transformers."),
    threads: int = typer.Option(1, "--threads", help="llama.cpp threads for the teacher."),
    limit: int = typer.Option(None, "--limit", help="Extraction: records to attempt in total (resumable)."),
    time_budget: float = typer.Option(None, "--time-budget", help="Extraction: stop cleanly after this many seconds."),
    oncology_only: bool = typer.Option(False, "--oncology-only", help="Evidence Inference: oncology keyword subset."),
    max_chars: int = typer.Option(3000, "--max-chars", help="Skip records whose text is longer."),
    seed: int = typer.Option(1337, "--seed", help="Split seed (splits are by record id)."),
    context_chars: int = typer.Option(1600, "--context-chars", help="PubMedQA: abstract characters kept (the end)."),
    rationale_first: bool = typer.Option(False, "--rationale-first", help="PubMedQA: reply {rationale, answer}."),
    policy: str = typer.Option("strict", "--policy", help="Extraction: strict (drop an answer with any failing "
                                                          "value) | prune (drop the failing values, re-verify)."),
    test_fraction: float = typer.Option(None, "--test-fraction", help="Share of records held out for test "
                                                                       "(default 0.2 pubmedqa, 0.15 otherwise)."),
    as_json: bool = JsonOpt,
) -> None:
    """Build a supervised dataset with train/val/test split by record id and a dataset card.

    Examples:
      oncolit finetune build-data pubmedqa --source ../shared/data/eval/pubmedqa-dev/pqal_dev.json
      oncolit finetune build-data answers           # the product's answer prompt -> cited sentences
      oncolit finetune build-data extraction --source ../shared/data/eval/evidence-inference/abstracts.jsonl \\
          --oncology-only --limit 200 --time-budget 7200      # resumable: rerun to continue
      oncolit finetune build-data extraction --source catalog --teacher qwen2.5-coder-1.5b
      oncolit finetune build-data evidence --source ../shared/data/eval/evidence-inference
      oncolit finetune build-data findings --source ../shared/data/eval/evidence-inference
      oncolit finetune build-data rerank --source ../shared/data
    """
    from synthesis.finetune import data

    out = out or finetune_dir() / "data" / task
    fractions = None
    if test_fraction is not None:
        fractions = {"train": 0.95 - test_fraction, "val": 0.05, "test": test_fraction}
    if task == "rerank":  # the reranker's (query, passage) pairs
        from synthesis.finetune import rerank_data

        card = rerank_data.build(Path(source) if source else DEFAULT_SHARED.parent, out, seed=seed)
        emit(card, as_json, "rerank: " + ", ".join(f"{k} {v}" for k, v in card["counts"].items()) + f" -> {out}")
        return
    if task == "findings":  # encoder datasets: their own layout (reader/, direction/) and card
        from synthesis.finetune import encoder_data

        card = encoder_data.build(Path(source or DEFAULT_SHARED / "evidence-inference"), out, seed=seed)
        emit(card, as_json, "findings: " + ", ".join(f"{k} {v}" for k, v in card["counts"].items()
                                                     if k.startswith(("reader_", "direction_")) and k.count("_") == 1)
             + f" -> {out}")
        return
    if task == "pubmedqa":
        card = data.build_pubmedqa(Path(source or DEFAULT_SHARED / "pubmedqa-dev" / "pqal_dev.json"), out, seed=seed,
                                   test_fraction=0.2 if test_fraction is None else test_fraction,
                                   context_chars=context_chars, rationale_first=rationale_first)
    elif task == "answers":
        card = data.build_answers(Path(source or DEFAULT_SHARED / "pubmedqa-dev" / "pqal_dev.json"), out, seed=seed,
                                  test_fraction=0.2 if test_fraction is None else test_fraction)
    elif task == "evidence":
        card = data.build_evidence(Path(source or DEFAULT_SHARED / "evidence-inference"), out, seed=seed,
                                   max_chars=max_chars, fractions=fractions)
    elif task == "extraction":
        from synthesis.llm import make_llm
        settings = get_settings()
        options = {"n_threads": threads} if teacher_backend == "llamacpp" else {}
        if teacher_backend == "openai":
            options = {"base_url": settings.llm.base_url, "api_key": settings.llm.api_key}
        llm = make_llm(teacher_backend, teacher, settings.models_dir, **options)
        try:
            if (source or "catalog") == "catalog":
                with open_catalog() as catalog:
                    card = data.build_extraction(data.catalog_articles(catalog), llm, out, seed=seed, limit=limit,
                                                 fractions=fractions, policy=policy,
                                                 max_chars=max_chars, say=_say, time_budget_s=time_budget,
                                                 source_info={"catalog": settings.resolved_catalog_url})
            else:
                path = Path(source)
                card = data.build_extraction(
                    data.evidence_inference_articles(path, oncology_only=oncology_only), llm, out, seed=seed,
                    limit=limit, fractions=fractions, policy=policy, max_chars=max_chars, say=_say, time_budget_s=time_budget,
                    source_info={"evidence_inference_abstracts": {"path": str(path), "sha256": data.sha256_of(path),
                                                                  "oncology_only": oncology_only}})
        finally:
            llm.close()
    else:
        raise typer.BadParameter(f"task must be one of {', '.join(data.TASKS)}")
    text = f"{task}: " + ", ".join(f"{s} {c['examples']}" for s, c in card["counts"].items()) + f" -> {out}"
    emit(card, as_json, text)


@app.command("train")
def train_(
    config: Path = typer.Argument(..., help="A TOML config (see synthesis/finetune/configs/)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set max_steps=20 (repeatable)."),
) -> None:
    """Train a LoRA adapter (resumes from the run's last checkpoint), then export a merged GGUF.

    Examples:
      oncolit finetune train synthesis/finetune/configs/pubmedqa-smollm2.toml
      oncolit finetune train synthesis/finetune/configs/pubmedqa-smollm2.toml --set max_steps=10 --set run_name=try
    """
    from synthesis.finetune.train import load_config, parse_overrides, train

    if _is_encoder_config(config):  # a findings encoder (reader / direction / answer): its own trainer
        from synthesis.finetune import encoder_train

        artifact = encoder_train.train(encoder_train.load_config(config, parse_overrides(set_)), say=_say)
        emit({"artifact": str(artifact)}, False, f"artifact saved in {artifact}")
        return
    cfg = load_config(config, parse_overrides(set_))
    settings = get_settings()
    if not cfg.models_dir:
        cfg.models_dir = str(settings.models_dir)
    if not cfg.out_dir:
        cfg.out_dir = str(finetune_dir() / "runs")
    if cfg.data_dir and not Path(cfg.data_dir).is_absolute() and not Path(cfg.data_dir).exists():
        cfg.data_dir = str(finetune_dir() / "data" / cfg.data_dir)
    run_dir = train(cfg, say=_say)
    emit({"run": str(run_dir)}, False, f"run saved in {run_dir}")


def _is_encoder_config(path: Path) -> bool:
    import tomllib

    return tomllib.loads(path.read_text(encoding="utf-8")).get("task") in ("reader", "direction", "answer", "rerank")


@app.command("eval")
def eval_(
    run: str = typer.Argument(..., help="Run directory or run name under <data dir>/finetune/runs."),
    split: str = typer.Option("test", "--split", help="train | val | test"),
    model: str = typer.Option("tuned", "--model", help="tuned (the adapter) | base (untuned) | a registry name | "
                                                       "teacher-logged (extraction: the teacher's logged replies)."),
    backend: str = typer.Option("llamacpp", "--backend", help="llamacpp (merged GGUF, grammar) | transformers."),
    limit: int = typer.Option(None, "--limit", help="Only the first N items of the split."),
    threads: int = typer.Option(1, "--threads", help="CPU threads (fixed, for reproducible numbers)."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Reply budget (default 96 pubmedqa; a few tokens "
                                                              "give the answer alone, much faster)."),
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate on a held-out split with greedy, schema-constrained decoding (same numbers every time).

    Examples:
      oncolit finetune eval pubmedqa-smollm2                       # the fine-tuned model
      oncolit finetune eval pubmedqa-smollm2 --model base          # the same base, untuned
      oncolit finetune eval pubmedqa-smollm2 --model qwen2.5-coder-1.5b
    """
    from synthesis.finetune.evaluate import evaluate_run

    doc = evaluate_run(run, runs_root=finetune_dir() / "runs", split=split, model=model, backend=backend,
                       limit=limit, threads=threads, say=_say, max_tokens=max_tokens)
    m = doc["metrics"]
    if doc["task"] == "extraction":
        text = (f"{doc['llm']} on {split} ({m['records']} records): verified-field rate {m['verified_field_rate']}, "
                f"field F1 {m['field_f1']}, {m['throughput']['items_per_minute']} records/min")
    else:
        text = (f"{doc['llm']} on {split} (n={m['n']}): accuracy {m['accuracy']}, macro-F1 {m['macro_f1']}, "
                f"confusion {json.dumps(m['confusion'])}, {m['throughput']['items_per_minute']} items/min")
    emit(doc, as_json, text)


@app.command("export")
def export(
    run: str = typer.Argument(..., help="Run directory or run name."),
    out_type: str = typer.Option("q8_0", "--type", help="q8_0 | f16 | f32 for the merged tensors."),
    register_as: str = typer.Option(None, "--register", help="Also list it in `oncolit models list` as NAME."),
) -> None:
    """Merge the run's adapter into its GGUF base (<run>/model.gguf) for llama.cpp; optionally register it.

    Example:
      oncolit finetune export pubmedqa-smollm2 --register smollm2-135m-pubmedqa
    """
    from synthesis.finetune.evaluate import find_run
    from synthesis.finetune.export_gguf import export_merged
    from synthesis.finetune.local_models import register_run

    run_dir = find_run(run, finetune_dir() / "runs")
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    if not config.get("gguf_file"):
        raise typer.BadParameter("this run's base is not a GGUF file; serve its adapter with the transformers backend")
    path = export_merged(Path(config["base_path"]) / config["gguf_file"], run_dir / "adapter", run_dir / "model.gguf",
                         out_type=out_type)
    message = f"merged GGUF: {path}"
    if register_as:
        register_run(get_settings().models_dir, run_dir, register_as)
        message += f"; registered as {register_as}"
    emit({"path": str(path), "registered": register_as}, False, message)
