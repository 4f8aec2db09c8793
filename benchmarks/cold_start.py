"""Cold start of `oncolit` commands, each run in a fresh process, against `python -c pass` in the same run.

Targets (issue 16, "Speed and sharing", on 2 cores): `oncolit --help` <= 0.5 s, `records show` <= 1 s,
`search --mode sparse` <= 1.5 s, hybrid `search` <= 3 s. A shared machine's load moves every number, so the
baseline (`python -c pass`, the interpreter's own start) is measured interleaved with the commands, round
by round in rotated order, and each command is also reported as a ratio to it.

The data dir is built here, untimed: two PubMed articles and one CT.gov study from tests/fixtures, ingested
and indexed, and the ONNX exports of the embedding model and the reranker (`oncolit index export-onnx`, when
onnxruntime and onnx are installed). `sparse` and `hybrid` are the searches as typed, with the default
settings (the shipped reranker reorders the top 30); `*-no-rerank` are their first stages alone. Each hybrid
run searches for a text never searched before, so its query vector is computed, not read from the embedding
cache. `hybrid-torch` runs the default search in a copy of the data dir without the exports (what every
search cost before they existed). After the timed rounds, one more run of each command reports which heavy
libraries it imported.

`--baseline-checkout DIR` also runs every command from another checkout of OncoLit (e.g. a worktree of the
commit before a change) in the same rounds, against its own data dir built by its own code, reported as
`<command>@baseline`: a before/after measured under the same load. A command the baseline lacks is skipped.

    .venv/bin/python -m benchmarks.cold_start [--runs 7] [--commands help,show,sparse,hybrid] [--out cold.json]
        [--baseline-checkout ../oncolit-before]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import stamp

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
ONCOLIT = [sys.executable, "-m", "oncolit.cli.main"]
TARGETS = {"help": 0.5, "show": 1.0, "sparse": 1.5, "sparse-no-rerank": 1.5, "hybrid": 3.0, "hybrid-no-rerank": 3.0}
HEAVY = ("torch", "sentence_transformers", "transformers", "onnxruntime", "qdrant_edge", "sqlalchemy", "numpy",
         "pydantic_settings")
QUERIES = ("chemotherapy for advanced lung cancer", "progression-free survival with maintenance therapy",
           "randomised trial of an added drug", "quality of life during treatment", "overall survival benefit")
# Run `-m MODULE ARGS` (argv[2:]) and write the names in sys.modules to argv[1] when the process exits.
PROBE = ("import atexit, json, runpy, sys\n"
         "out = sys.argv[1]\n"
         "atexit.register(lambda: open(out, 'w').write(json.dumps(sorted(sys.modules))))\n"
         "sys.argv = sys.argv[2:]\n"
         "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def commands() -> dict[str, tuple[str, list[str]]]:
    """name -> (which data dir: "" none, "onnx" with the export, "torch" without; the arguments after python)."""
    return {
        "pass": ("", ["-c", "pass"]),
        "help": ("onnx", ["-m", "oncolit.cli.main", "--help"]),
        "group-help": ("onnx", ["-m", "oncolit.cli.main", "records", "--help"]),
        "show": ("onnx", ["-m", "oncolit.cli.main", "records", "show", "NCT90000001"]),
        "sparse": ("onnx", ["-m", "oncolit.cli.main", "search", "chemotherapy lung cancer", "--mode", "sparse"]),
        "sparse-no-rerank": ("onnx", ["-m", "oncolit.cli.main", "search", "chemotherapy lung cancer", "--mode",
                                      "sparse", "--no-rerank"]),
        "verify": ("onnx", ["-m", "oncolit.cli.main", "index", "verify"]),
        "hybrid": ("onnx", ["-m", "oncolit.cli.main", "search", "{query}"]),
        "hybrid-no-rerank": ("onnx", ["-m", "oncolit.cli.main", "search", "{query}", "--no-rerank"]),
        "hybrid-torch": ("torch", ["-m", "oncolit.cli.main", "search", "{query}"]),
    }


def log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def env_for(data_dir: Path | None, repo: Path = REPO) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONCOLIT_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(repo)})
    if data_dir is not None:
        env["ONCOLIT_DATA_DIR"] = str(data_dir)
    return env


def oncolit(data_dir: Path, *args: str, repo: Path = REPO, check: bool = True) -> bool:
    proc = subprocess.run([*ONCOLIT, *args], cwd=repo, env=env_for(data_dir, repo), capture_output=True, text=True)
    if proc.returncode != 0 and check:
        raise SystemExit(f"oncolit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode == 0


def build_data(workdir: Path, need_index: bool, need_onnx: bool, need_torch_copy: bool,
               repo: Path = REPO) -> dict[str, Path]:
    """The fixture data dirs: "onnx" (ingested, synced, exported when asked and the checkout can) and "torch"
    (a copy without the export)."""
    data = workdir / "data"
    started = time.perf_counter()
    oncolit(data, "ingest", "pubmed-files", str(FIXTURES / "pubmed" / "structured_abstract.xml"),
            str(FIXTURES / "pubmed" / "unicode.xml"), repo=repo)
    oncolit(data, "ingest", "ctgov-files", str(FIXTURES / "ctgov" / "NCT90000001_2026-02-10.json"), repo=repo)
    if need_index:
        oncolit(data, "index", "sync", repo=repo)
    if need_onnx and not oncolit(data, "index", "export-onnx", repo=repo, check=repo == REPO):
        log(f"{repo}: no `oncolit index export-onnx`; its searches embed and rerank with torch")
    dirs = {"onnx": data}
    if need_torch_copy:
        dirs["torch"] = workdir / "data-torch"
        shutil.copytree(data, dirs["torch"], ignore=shutil.ignore_patterns("onnx"))
    log(f"data dir built in {time.perf_counter() - started:.1f}s")
    return dirs


def argv_for(args: list[str], n: int, salt: str) -> list[str]:
    """`args` with a query no run has searched before (round `n`, command `salt`): commands that share a data dir
    share its embedding cache, and a cached query vector would make the search look free."""
    query = f"{QUERIES[n % len(QUERIES)]} {salt} run{n}"
    return [a.replace("{query}", query) for a in args]


def run_once(args: list[str], data_dir: Path | None, repo: Path = REPO) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], cwd=repo, env=env_for(data_dir, repo), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def imported(args: list[str], data_dir: Path | None, out: Path, repo: Path = REPO) -> dict[str, bool]:
    module_args = args[1:] if args[0] == "-m" else args
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), *module_args], cwd=repo,
                          env=env_for(data_dir, repo), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0 or not out.exists():
        return {}
    modules = set(json.loads(out.read_text()))
    return {name: name in modules for name in HEAVY}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="Fresh processes per command.")
    parser.add_argument("--commands", default="help,group-help,show,sparse,sparse-no-rerank,verify,hybrid,"
                                               "hybrid-no-rerank,hybrid-torch",
                        help=f"Comma-separated, from: {', '.join(c for c in commands() if c != 'pass')}.")
    parser.add_argument("--workdir", type=Path, default=None, help="Where the data dirs go (default: a temp dir).")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--baseline-checkout", type=Path, default=None,
                        help="Another OncoLit checkout whose commands run in the same rounds, as <command>@baseline.")
    args = parser.parse_args(argv)

    known = commands()
    chosen = ["pass", *(c.strip() for c in args.commands.split(",") if c.strip() and c.strip() != "pass")]
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise SystemExit(f"unknown commands {unknown}; choose from {', '.join(known)}")
    onnx_ready = all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))
    notes: list[str] = []
    searches = {c for c in chosen if c.startswith(("sparse", "hybrid")) or c == "verify"}
    need_onnx = onnx_ready and bool(searches & {"sparse", "hybrid", "hybrid-no-rerank"})
    if searches and not onnx_ready:
        notes.append("no ONNX exports (onnxruntime and onnx are needed: pip install 'oncolit[onnx]'): every search "
                     "embeds and reranks with torch")
    started = stamp()
    repos = {"": REPO} | ({"@baseline": args.baseline_checkout.resolve()} if args.baseline_checkout else {})
    with tempfile.TemporaryDirectory(prefix="oncolit-cold-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        dirs = {label: build_data(workdir / (label.strip("@") or "this"), need_index=bool(searches),
                                  need_onnx=need_onnx, need_torch_copy="hybrid-torch" in chosen, repo=repo)
                for label, repo in repos.items()}
        # (label, command): "pass" once, every other command once per checkout (the baseline's hybrid has no
        # export to use, so its hybrid-torch would be the same runs again)
        runs = [("", "pass")] + [(label, name) for name in chosen if name != "pass" for label in repos
                                 if not (label and name == "hybrid-torch")]
        times: dict[str, list[float]] = {f"{name}{label}": [] for label, name in runs}
        for n in range(args.runs):
            order = runs[n % len(runs):] + runs[:n % len(runs)]  # rotated: load hits every command alike
            for label, name in order:
                where, cmd = known[name]
                times[f"{name}{label}"].append(run_once(argv_for(cmd, n, f"{name}{label}"),
                                                        dirs[label][where] if where else None, repos[label]))
            log(f"round {n + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
        probes = {f"{name}{label}": imported(argv_for(known[name][1], args.runs, f"{name}{label}"),
                                             dirs[label][known[name][0]], workdir / f"modules-{name}{label}.json",
                                             repos[label])
                  for i, (label, name) in enumerate(runs) if name != "pass"}
    base = statistics.median(times["pass"])
    results = {}
    for key, runs_s in times.items():
        name = key.split("@")[0]
        median = statistics.median(runs_s)
        target = TARGETS.get(name)
        results[key] = {"median_s": round(median, 4), "min_s": round(min(runs_s), 4),
                        "max_s": round(max(runs_s), 4), "runs_s": [round(t, 4) for t in runs_s],
                        "ratio_to_python": round(median / base, 2) if base else None,
                        "target_s": target, "meets_target": None if target is None else median <= target,
                        "imports": probes.get(key)}
    result: dict[str, Any] = {
        "benchmark": "cold_start", **started, "load_avg_end": list(os.getloadavg()),
        "settings": {"runs": args.runs, "commands": chosen, "python": sys.executable,
                     "baseline_checkout": str(args.baseline_checkout) if args.baseline_checkout else None,
                     "fixture": ["pubmed/structured_abstract.xml", "pubmed/unicode.xml",
                                 "ctgov/NCT90000001_2026-02-10.json"]},
        "notes": notes, "results": results}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
