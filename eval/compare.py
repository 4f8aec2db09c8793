"""`oncolit eval compare RUN_A RUN_B`: the metric deltas between two runs, and what differs in their stamps.

Only numbers present in both runs are compared (dotted keys, as in report.md's "All metrics"). Differences in
suite, dataset fingerprint, settings hash or commit are printed first: a delta means little if the data changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.report import flatten, fmt, load_run


def compare(run_a: Path | str, run_b: Path | str) -> dict[str, Any]:
    a, b = load_run(run_a), load_run(run_b)
    fa, fb = flatten(a.get("metrics", {})), flatten(b.get("metrics", {}))
    rows = []
    for key in [k for k in fa if k in fb]:
        va, vb = fa[key], fb[key]
        if isinstance(va, bool) or isinstance(vb, bool):
            continue
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            rows.append({"metric": key, "a": va, "b": vb, "delta": vb - va})
    only_a = sorted(k for k in fa if k not in fb)
    only_b = sorted(k for k in fb if k not in fa)
    stamp_diffs = {}
    for name, get in (("suite", lambda d: d.get("suite")),
                      ("dataset", lambda d: d.get("dataset", {}).get("fingerprint", {}).get("sha256")),
                      ("settings_hash", lambda d: d.get("settings_hash")),
                      ("commit", lambda d: d.get("git", {}).get("describe")),
                      ("config", lambda d: d.get("config"))):
        if get(a) != get(b):
            stamp_diffs[name] = {"a": get(a), "b": get(b)}
    return {"a": str(run_a), "b": str(run_b), "differences": stamp_diffs, "deltas": rows,
            "only_in_a": only_a, "only_in_b": only_b}


def render(result: dict[str, Any]) -> str:
    lines = [f"A: {result['a']}", f"B: {result['b']}"]
    for name, diff in result["differences"].items():
        lines.append(f"differs — {name}: A={diff['a']}  B={diff['b']}")
    if not result["differences"]:
        lines.append("same suite, dataset, settings, commit and config")
    width = max([len(r["metric"]) for r in result["deltas"]] + [6])
    lines.append(f"{'metric':<{width}}  {'A':>12}  {'B':>12}  {'B-A':>12}")
    for r in result["deltas"]:
        delta = r["delta"]
        sign = "+" if delta > 0 else ""
        lines.append(f"{r['metric']:<{width}}  {fmt(r['a']):>12}  {fmt(r['b']):>12}  {sign + fmt(delta):>12}")
    if result["only_in_a"] or result["only_in_b"]:
        lines.append(f"metrics only in A: {len(result['only_in_a'])}; only in B: {len(result['only_in_b'])}")
    return "\n".join(lines)
