"""Evaluation: every figure OncoLit quotes, reproducible from a dataset path and one command.

    oncolit eval <suite> --dataset PATH [--limit N] [--out DIR]      suites: retrieval extraction grading
                                                                             citations qa perf
    oncolit eval compare RUN_A RUN_B

    metrics.py     pure metric functions (ranking, classification, AUROC/PR, field matching, latency)
    datasets/      loaders: a path in, typed items out (BEIR, PubMedQA, Evidence Inference, HoC, PubMed XML, topics)
    suites/        one module per suite: `run(RunOptions, ...) -> SuiteResult`
    report.py      SuiteResult -> results.json (stamped), report.md, PNG plots, predictions.jsonl
    stamp.py       git commit, settings hash, dataset fingerprint, machine
    compare.py     deltas between two runs
    prompts.py     the prompts the harness itself sends (yes/no/maybe, entailment judge)
    cli.py         the `oncolit eval` typer app

See eval/README.md for the datasets each suite reads, the full-run commands and the measured numbers.
"""
