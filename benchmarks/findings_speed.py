"""Findings extraction speed: rules only vs rules + the findings models, per abstract, one at a time and batched.

    python -m benchmarks.findings_speed [--dataset ../shared/data/eval/evidence-inference] [--n 100]
        [--threads 2] [--out findings_speed.json]

Measured in one run on the same abstracts (Evidence Inference validation articles, as the extraction suite reads
them), after one warm-up record:
  rules        `extract(article)`                        the baseline
  models       `extract(article, models=...)`            one record at a time (what `oncolit extract ID` does)
  batched      `prefetch(models, batch)` + `extract(...)` 32 records per batch (what a backfill does)
Reported: seconds per abstract (mean, p50, p95) for each, the models' added cost (models - rules), and the ratios.
The target of issue 14 is models <= 0.2 s per abstract on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import stamp


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _summary(seconds: list[float]) -> dict[str, float]:
    return {"mean_s": round(statistics.fmean(seconds), 4), "p50_s": round(_percentile(seconds, 0.5), 4),
            "p95_s": round(_percentile(seconds, 0.95), 4), "n": len(seconds)}


def run(dataset: Path, n: int, threads: int, batch: int = 32) -> dict[str, Any]:
    import torch

    from eval.datasets.evidence_inference import load_evidence_inference
    from synthesis.extract import extract, prefetch
    from synthesis.findings_models import FindingsModels

    torch.set_num_threads(threads)
    data = load_evidence_inference(dataset, "validation")
    articles = [a.record() for a in list(data.articles.values())[:n]]
    started = time.perf_counter()
    models = FindingsModels.load(threads=threads)
    load_s = time.perf_counter() - started
    extract(articles[0], models=models)  # warm-up (first call allocates)
    timings: dict[str, list[float]] = {"rules": [], "models": []}
    for article in articles:
        t = time.perf_counter()
        extract(article)
        timings["rules"].append(time.perf_counter() - t)
        models._cache.clear()  # noqa: SLF001 - a cold reading each time, as for a new record
        t = time.perf_counter()
        extract(article, models=models)
        timings["models"].append(time.perf_counter() - t)
    models._cache.clear()  # noqa: SLF001
    t = time.perf_counter()
    for i in range(0, len(articles), batch):
        chunk = articles[i:i + batch]
        prefetch(models, chunk)
        for article in chunk:
            extract(article, models=models)
    batched_total = time.perf_counter() - t
    rules, with_models = _summary(timings["rules"]), _summary(timings["models"])
    return {
        "benchmark": "findings_speed", **stamp(), "dataset": str(dataset), "abstracts": len(articles),
        "threads": threads, "models": models.name, "model_load_s": round(load_s, 3),
        "rules": rules, "models_one_at_a_time": with_models,
        "models_batched": {"batch": batch, "mean_s": round(batched_total / len(articles), 4)},
        "models_added_mean_s": round(with_models["mean_s"] - rules["mean_s"], 4),
        "ratio_models_to_rules": round(with_models["mean_s"] / rules["mean_s"], 2),
        "ratio_batched_to_one_at_a_time": round(batched_total / len(articles) / with_models["mean_s"], 3),
        "target_s_per_abstract": 0.2, "meets_target": with_models["mean_s"] <= 0.2,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("../shared/data/eval/evidence-inference"))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.dataset, args.n, args.threads)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
