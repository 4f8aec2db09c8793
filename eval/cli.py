"""`oncolit eval …`: run an evaluation suite on a dataset path and write a stamped run folder; compare two runs.

Every suite writes <out>/results.json, report.md, PNG plots and predictions.jsonl (see eval/report.py). The
default out dir is <data dir>/eval/<suite>-<UTC time>, outside the repository.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import typer

from eval.report import SuiteResult, fmt, write_run
from eval.suites.common import BACKEND_SPEC_HELP, RunOptions

app = typer.Typer(help="Evaluation suites: retrieval, extraction, grading, citations, qa, perf; and compare.",
                  no_args_is_help=True)

DatasetOpt = typer.Option(..., "--dataset", exists=True, help="Dataset path: a BEIR folder or a shared dataset "
                                                               "folder (see eval/README.md).")
LimitOpt = typer.Option(None, "--limit", min=1, help="Evaluate only the first N items (a quick slice).")
OutOpt = typer.Option(None, "--out", help="Run folder (default: <data dir>/eval/<suite>-<time>).")
JsonOpt = typer.Option(False, "--json", help="Print results.json on stdout instead of a summary.")
KeepOpt = typer.Option(False, "--keep-work", help="Keep the fresh catalog and index under <out>/work.")


def _settings() -> Any:
    from oncolit.cli.common import get_settings
    return get_settings()


def _out_dir(out: Path | None, suite: str) -> Path:
    if out is not None:
        return out
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return _settings().data_dir / "eval" / f"{suite}-{stamp}"


def _options(dataset: Path, limit: int | None, out: Path | None, suite: str, keep: bool = False) -> RunOptions:
    return RunOptions(dataset=dataset, out=_out_dir(out, suite), settings=_settings(), limit=limit, keep_work=keep)


def _finish(result: SuiteResult, options: RunOptions, as_json: bool) -> None:
    doc = write_run(result, options.out, options.settings.redacted(), options.dataset)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        return
    lines = [f"{result.suite}: {options.out}"]
    for table in result.tables:
        lines.append(f"\n{table['title']}")
        lines.append("  " + " | ".join(table["columns"]))
        lines += ["  " + " | ".join(fmt(c) for c in row) for row in table["rows"]]
    for note in result.notes:
        lines.append(f"note: {note}")
    lines.append(f"\nreport: {options.out / 'report.md'}")
    typer.echo("\n".join(lines))


@app.command("retrieval")
def retrieval(
    dataset: Path = DatasetOpt, limit: int = LimitOpt, out: Path = OutOpt,
    corpus_size: int = typer.Option(None, "--corpus-size", min=1, help="With --limit: documents kept (judged ones "
                                                                        "always; default max(100, 10 × limit))."),
    split: str = typer.Option("test", "--split", help="qrels split of a BEIR folder."),
    ei_split: str = typer.Option("all", "--ei-split", help="Evidence Inference prompts: all, train or validation."),
    mode: list[str] = typer.Option([], "--mode", help="dense, sparse, hybrid, each optionally + '+expand' "
                                                      "(query synonyms) then + '+rerank' (repeatable; default "
                                                      "dense, sparse, hybrid, sparse+expand, hybrid+expand and, with "
                                                      "a reranker configured, hybrid+rerank, hybrid+expand+rerank)."),
    keep_work: bool = KeepOpt, as_json: bool = JsonOpt,
) -> None:
    """nDCG@10, Recall@10/100, MRR@10 per search mode on a freshly built index; with the shared data root as
    --dataset, the topical benchmark (eval/datasets/topical.py).

    Examples:
      oncolit eval retrieval --dataset ../shared/data/eval/pubmedqa-dev
      oncolit eval retrieval --dataset ../shared/data/eval/evidence-inference --ei-split validation
      oncolit eval retrieval --dataset path/to/beir/scifact --limit 50
      oncolit eval retrieval --dataset ../shared/data --mode hybrid --mode hybrid+rerank
      oncolit eval retrieval --dataset /tmp/topical --mode sparse --mode sparse+expand --mode hybrid+expand
    """
    from eval.suites import retrieval as suite

    for m in mode:
        if suite.split_mode(m)[0] not in suite.MODES:
            raise typer.BadParameter(f"unknown mode {m!r}: dense, sparse, hybrid, optionally with +expand and/or "
                                     "+rerank (in that order)")
    options = _options(dataset, limit, out, "retrieval", keep_work)
    _finish(suite.run(options, corpus_size=corpus_size, split=split, ei_split=ei_split,
                      modes=tuple(mode) or None), options, as_json)


@app.command("build-topical")
def build_topical_cmd(
    shared: Path = typer.Option(..., "--shared", exists=True, file_okay=False,
                                help="The shared data root (the folder holding eval/ and pubmed/)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the BEIR benchmark into."),
    as_json: bool = JsonOpt,
) -> None:
    """Write the topical retrieval benchmark (queries with several relevant papers, judged from other papers'
    labels, the query's own source excluded) as a BEIR folder. How it is built: eval/datasets/topical.py.

    Examples:
      oncolit eval build-topical --shared ../shared/data --out /tmp/topical
      oncolit eval retrieval --dataset /tmp/topical
    """
    from eval.datasets.topical import build_topical, write_topical

    folder = write_topical(build_topical(shared), out)
    stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    if as_json:
        sys.stdout.write(json.dumps({"path": str(folder), **stats}, indent=2) + "\n")
    else:
        typer.echo(f"topical benchmark: {folder} ({stats['queries']} queries, {stats['documents']} documents)")


@app.command("extraction")
def extraction(
    dataset: Path = DatasetOpt, limit: int = LimitOpt, out: Path = OutOpt,
    backend: list[str] = typer.Option(["none"], "--backend", help=BACKEND_SPEC_HELP + " Repeat to compare."),
    split: str = typer.Option("all", "--split", help="Evidence Inference articles: all, train, validation, dev (the findings models' held-out part of train) or fit (the rest of train)."),
    all_prompts: bool = typer.Option(False, "--all-prompts", help="Also score prompts whose evidence is only in "
                                                                   "the full text (not in the abstract)."),
    as_json: bool = JsonOpt,
) -> None:
    """Field-level precision/recall/F1 of findings extraction against Evidence Inference, per backend.

    Examples:
      oncolit eval extraction --dataset ../shared/data/eval/evidence-inference
      oncolit eval extraction --dataset ../shared/data/eval/evidence-inference --backend none \\
          --backend llamacpp:smollm2-135m --limit 50
    """
    from eval.suites import extraction as suite

    options = _options(dataset, limit, out, "extraction")
    _finish(suite.run(options, backends=backend, split=split, abstract_only=not all_prompts), options, as_json)


@app.command("grading")
def grading(
    dataset: Path = DatasetOpt, limit: int = LimitOpt, out: Path = OutOpt, as_json: bool = JsonOpt,
) -> None:
    """Design classification (classifier, rules, product decision) and evidence-level agreement.

    The classifier is scored only on documents it never saw in training (synthesis/design_classifier/model/
    split.json), so its numbers are not inflated by leakage.

    Examples:
      oncolit eval grading --dataset ../shared/data
      oncolit eval grading --dataset ../shared/data/pubmed/real
    """
    from eval.suites import grading as suite

    options = _options(dataset, limit, out, "grading")
    _finish(suite.run(options), options, as_json)


@app.command("citations")
def citations(
    dataset: Path = DatasetOpt, limit: int = LimitOpt, out: Path = OutOpt,
    backend: str = typer.Option("settings", "--backend", help=BACKEND_SPEC_HELP),
    judge: str = typer.Option(None, "--judge", help="Backend spec of the entailment judge (default: the same "
                                                    "model as --backend; `none` skips entailment)."),
    corpus_size: int = typer.Option(None, "--corpus-size", min=1, help="Records indexed (default: all)."),
    keep_work: bool = KeepOpt, as_json: bool = JsonOpt,
) -> None:
    """Citation faithfulness of answers (and digests) generated over a corpus.

    Examples:
      oncolit eval citations --dataset ../shared/data/eval/pubmedqa-dev --backend llamacpp:smollm2-135m --limit 20
      oncolit eval citations --dataset ../shared/data/eval/pubmedqa-dev --backend none
    """
    from eval.suites import citations as suite

    options = _options(dataset, limit, out, "citations", keep_work)
    _finish(suite.run(options, backend=backend, judge=judge, corpus_size=corpus_size), options, as_json)


@app.command("qa")
def qa(
    dataset: Path = DatasetOpt, limit: int = LimitOpt, out: Path = OutOpt,
    backend: str = typer.Option("settings", "--backend", help=BACKEND_SPEC_HELP),
    mode: list[str] = typer.Option(["context", "retrieval"], "--mode", help="context (the item's abstract) and/or "
                                                                             "retrieval (OncoLit's search)."),
    k: int = typer.Option(3, "--k", min=1, help="Records retrieved per question in retrieval mode."),
    corpus_size: int = typer.Option(None, "--corpus-size", min=1,
                                    help="Abstracts indexed for retrieval mode (default: all; with --limit "
                                         "max(100, 10 × limit))."),
    keep_work: bool = KeepOpt, as_json: bool = JsonOpt,
) -> None:
    """PubMedQA yes/no/maybe accuracy and macro-F1, from the abstract and from OncoLit retrieval.

    Examples:
      oncolit eval qa --dataset ../shared/data/eval/pubmedqa-dev --backend llamacpp:smollm2-135m --limit 100
    """
    from eval.suites import qa as suite

    options = _options(dataset, limit, out, "qa", keep_work)
    _finish(suite.run(options, backend=backend, modes=tuple(mode), k=k, corpus_size=corpus_size), options, as_json)


@app.command("perf")
def perf(
    dataset: Path = DatasetOpt, limit: int = LimitOpt, out: Path = OutOpt,
    backend: str = typer.Option("none", "--backend", help=BACKEND_SPEC_HELP + " Used for the extraction timing."),
    llm_records: int = typer.Option(10, "--llm-records", min=0, help="Records extracted with the LLM (it is slow)."),
    queries: int = typer.Option(100, "--queries", min=1, help="Queries timed per search mode."),
    keep_work: bool = KeepOpt, as_json: bool = JsonOpt,
) -> None:
    """Ingest, extraction, sync and query throughput and latency on a corpus (--limit records).

    Examples:
      oncolit eval perf --dataset ../shared/data/pubmed/constructed --limit 1000
    """
    from eval.suites import perf as suite

    options = _options(dataset, limit, out, "perf", keep_work)
    _finish(suite.run(options, backend=backend, llm_records=llm_records, n_queries=queries), options, as_json)


@app.command("compare")
def compare(
    run_a: Path = typer.Argument(..., exists=True, help="Run folder (or results.json) A."),
    run_b: Path = typer.Argument(..., exists=True, help="Run folder (or results.json) B."),
    as_json: bool = JsonOpt,
) -> None:
    """Print the metric deltas B − A, and what differs between the runs' stamps.

    Example:
      oncolit eval compare runs/retrieval-before runs/retrieval-after
    """
    from eval.compare import compare as do_compare
    from eval.compare import render

    result = do_compare(run_a, run_b)
    typer.echo(json.dumps(result, indent=2) if as_json else render(result))


if __name__ == "__main__":
    app()
