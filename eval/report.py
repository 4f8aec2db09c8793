"""A suite's result -> a run folder: `results.json` (the record), `report.md` (for people), PNG plots, and
`predictions.jsonl` (one line per evaluated item, for error analysis).

results.json holds everything needed to redraw every plot (`plots`), so the notebook and `figures()` work from
it alone; the PNGs are a convenience. Its stamp: suite, time, command, git commit (+ dirty flag), redacted
settings and their hash, machine, dataset path + fingerprint, resolved config, timings.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eval import stamp

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
PREDICTIONS_FILE = "predictions.jsonl"
SCHEMA = "oncolit-eval/1"


@dataclass
class SuiteResult:
    """What a suite hands to the reporter.

    plots: {"confusion": {title: {"labels": [...], "counts": [[...]]}},
            "pr": {title: {series: {"precision": [...], "recall": [...], "average_precision": float}}},
            "latency": {title: {series: [seconds, ...]}},
            "bars": {title: {label: value}}}
    tables: [{"title": str, "columns": [...], "rows": [[...], ...]}] — the views the Markdown report shows.
    """

    suite: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    dataset: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    plots: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)


def stamped(result: SuiteResult, settings_redacted: dict[str, Any], dataset_path: Path | None) -> dict[str, Any]:
    """The results.json document for `result`."""
    dataset = dict(result.dataset)
    if dataset_path is not None:
        dataset["fingerprint"] = stamp.dataset_fingerprint(dataset_path)
    return {
        "schema": SCHEMA, "suite": result.suite, "created": stamp.now(), "command": stamp.command_line(),
        "git": stamp.git_state(), "settings_hash": stamp.settings_hash(settings_redacted),
        "settings": settings_redacted, "machine": stamp.machine(), "dataset": dataset, "config": result.config,
        "metrics": _clean(result.metrics), "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "tables": _clean(result.tables), "notes": result.notes, "plots": _clean(result.plots),
    }


def write_run(result: SuiteResult, out_dir: Path, settings_redacted: dict[str, Any],
              dataset_path: Path | None) -> dict[str, Any]:
    """Write results.json, predictions.jsonl, the PNGs and report.md into `out_dir`; return the document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = stamped(result, settings_redacted, dataset_path)
    images = save_figures(doc, out_dir)
    doc["images"] = images
    (out_dir / RESULTS_FILE).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out_dir / PREDICTIONS_FILE).open("w", encoding="utf-8") as fh:
        for item in result.items:
            fh.write(json.dumps(_clean(item), ensure_ascii=False) + "\n")
    (out_dir / REPORT_FILE).write_text(markdown(doc), encoding="utf-8")
    return doc


def load_run(path: Path | str) -> dict[str, Any]:
    """A run's results.json, from the run folder or the file itself."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p} not found: give a run folder written by `oncolit eval` (or its results.json)")
    return json.loads(p.read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "plot"


def figures(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    """(file name, matplotlib Figure) for every plot in a results document."""
    out: list[tuple[str, Any]] = []
    plots = doc.get("plots", {})
    for title, data in plots.get("confusion", {}).items():
        out.append((f"confusion-{_slug(title)}.png", confusion_figure(title, data["labels"], data["counts"])))
    for title, series in plots.get("pr", {}).items():
        out.append((f"pr-{_slug(title)}.png", pr_figure(title, series)))
    for title, series in plots.get("latency", {}).items():
        out.append((f"latency-{_slug(title)}.png", latency_figure(title, series)))
    for title, values in plots.get("bars", {}).items():
        out.append((f"bars-{_slug(title)}.png", bar_figure(title, values)))
    return out


def save_figures(doc: dict[str, Any], out_dir: Path) -> list[str]:
    """Render every plot to PNG with the non-interactive Agg backend (no display needed)."""
    import matplotlib

    if "ipykernel" not in sys.modules:  # in a notebook keep its inline backend
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    for name, fig in figures(doc):
        fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
        names.append(name)
    return names


def confusion_figure(title: str, labels: list[str], counts: list[list[int]]) -> Any:
    import matplotlib.pyplot as plt

    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.75 * n, 1.0 + 0.7 * n))
    image = ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    top = max((max(row) for row in counts), default=0) or 1
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(counts[i][j]), ha="center", va="center",
                    color="white" if counts[i][j] > top / 2 else "black", fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return fig


def pr_figure(title: str, series: dict[str, dict[str, Any]]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, curve in series.items():
        ap = curve.get("average_precision")
        label = f"{name} (AP {ap:.3f})" if isinstance(ap, (int, float)) else name
        ax.plot(curve["recall"], curve["precision"], marker="." if len(curve["recall"]) < 30 else None, label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def latency_figure(title: str, series: dict[str, list[float]]) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    all_ms = [s * 1000 for values in series.values() for s in values]
    if all_ms:
        low, high = min(all_ms), max(all_ms)
        bins: Any = 30 if high <= low * 20 or low <= 0 else [low * (high / low) ** (i / 30) for i in range(31)]
        for name, values in series.items():
            ax.hist([s * 1000 for s in values], bins=bins, alpha=0.55, label=f"{name} (n={len(values)})")
        if not isinstance(bins, int):
            ax.set_xscale("log")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def bar_figure(title: str, values: dict[str, float]) -> Any:
    import matplotlib.pyplot as plt

    names = list(values)
    fig, ax = plt.subplots(figsize=(1.5 + 0.6 * len(names), 3.4))
    nums = [v if isinstance(v, (int, float)) and v is not None else 0 for v in values.values()]
    ax.bar(range(len(names)), nums, color="#4c72b0")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)
    for i, v in enumerate(nums):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, max(1.0, max(nums, default=0) * 1.1))
    ax.set_title(title, fontsize=10)
    return fig


# ------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def md_table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(fmt(c).replace("|", "\\|") for c in row) + " |\n" for row in rows)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested metrics as dotted keys ("dense.ndcg@10"); lists are left out (they are curves, not numbers)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif not isinstance(data, list):
        out[prefix] = data
    return out


def markdown(doc: dict[str, Any]) -> str:
    git = doc.get("git", {})
    dataset = doc.get("dataset", {})
    fp = dataset.get("fingerprint", {})
    m = doc.get("machine", {})
    lines = [
        f"# OncoLit eval: {doc['suite']}",
        "",
        f"- run: {doc.get('created')} — `{doc.get('command')}`",
        f"- git: `{git.get('describe')}`; settings hash `{doc.get('settings_hash')}`",
        f"- dataset: `{dataset.get('path', fp.get('path'))}` ({dataset.get('kind', '?')}), "
        f"fingerprint `{str(fp.get('sha256', ''))[:16]}` over {fp.get('files', '?')} file(s)",
        f"- machine: {m.get('processor')} × {m.get('cpus')} cpus, {m.get('memory_gb')} GB, "
        f"load {m.get('load_average')}, Python {m.get('python')}",
        f"- config: `{json.dumps(doc.get('config', {}), sort_keys=True, default=str)}`",
        "",
    ]
    if doc.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    for table in doc.get("tables", []):
        lines += [f"## {table['title']}", "", md_table(table["columns"], table["rows"])]
    for image in doc.get("images", []):
        lines += [f"![{image}]({image})", ""]
    if doc.get("timings"):
        timings = [[k, v] for k, v in doc["timings"].items()]
        lines += ["## Timings (seconds)", "", md_table(["phase", "seconds"], timings)]
    flat = flatten(doc.get("metrics", {}))
    lines += ["## All metrics", "", md_table(["metric", "value"], [[k, v] for k, v in flat.items()])]
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, tuples -> lists, numpy scalars -> Python, floats rounded to 6 places."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    return value
