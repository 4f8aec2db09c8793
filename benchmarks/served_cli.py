"""`oncolit search` in a fresh process, alone vs through a running `oncolit serve` on the same data dir.

Why: while a server owns a data dir, `search`, `ask` and `index sync` go through it (`oncolit.via_server`):
the command then loads no index and no model, the server's are warm. This measures what that costs or saves,
against `python -c pass` in the same rounds. Two copies of the fixture data dir of `benchmarks.cold_start`
(two PubMed articles, one CT.gov study, indexed): one used directly, one owned by a server on a free loopback
port, so both kinds of run interleave round by round (rotated) under the same load. Each hybrid run searches a
text never searched before (no cached query vector). Also reported: seconds from `serve` to its first
answered search (a search started as soon as the server has claimed the data dir waits for it to be ready).

    .venv/bin/python -m benchmarks.served_cli [--runs 5] [--out served.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.cold_start import ONCOLIT, REPO, argv_for, build_data, env_for, log, run_once
from benchmarks.common import stamp
from oncolit.owner import running_server
from oncolit.settings import Settings

SEARCHES = {"sparse": ["-m", "oncolit.cli.main", "search", "chemotherapy lung cancer", "--mode", "sparse"],
            "hybrid": ["-m", "oncolit.cli.main", "search", "{query}"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="Fresh processes per command.")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    started = stamp()
    with tempfile.TemporaryDirectory(prefix="oncolit-served-") as tmp:
        direct = build_data(Path(tmp), need_index=True, need_onnx=False, need_torch_copy=False)["onnx"]
        served = Path(tmp) / "data-served"
        shutil.copytree(direct, served)
        env = env_for(served) | {"ONCOLIT_SCHEDULE__IN_SERVER": "false", "ONCOLIT_LLM__BACKEND": "none"}
        launched = time.perf_counter()
        server = subprocess.Popen([*ONCOLIT, "serve", "--port", str(free_port())], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            while running_server(Settings(data_dir=served)) is None and server.poll() is None:
                time.sleep(0.05)  # the claim comes first, before the models load
            first = run_once(argv_for(SEARCHES["sparse"], 0, "first"), served)  # waits for the starting server
            ready = time.perf_counter() - launched
            log(f"serve -> first answered search: {ready:.1f}s")
            kinds = [("pass", None, ["-c", "pass"])] + [
                (f"{name}{label}", where, cmd) for name, cmd in SEARCHES.items()
                for label, where in (("", direct), ("@server", served))]
            times: dict[str, list[float]] = {name: [] for name, _, _ in kinds}
            for n in range(args.runs):
                order = kinds[n % len(kinds):] + kinds[:n % len(kinds)]
                for name, where, cmd in order:
                    times[name].append(run_once(argv_for(cmd, n, name), where))
                log(f"round {n + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
        finally:
            server.terminate()
            server.wait(timeout=60)
        left = (served / "server.json").exists()
    base = statistics.median(times["pass"])
    results = {name: {"median_s": round(statistics.median(t), 4), "min_s": round(min(t), 4),
                      "max_s": round(max(t), 4), "runs_s": [round(x, 4) for x in t],
                      "ratio_to_python": round(statistics.median(t) / base, 2) if base else None}
               for name, t in times.items()}
    result: dict[str, Any] = {
        "benchmark": "served_cli", **started, "load_avg_end": list(os.getloadavg()),
        "settings": {"runs": args.runs, "python": sys.executable, "llm": "none", "scheduler": False},
        "serve_to_first_search_s": round(ready, 3), "first_search_s": round(first, 3),
        "owner_file_left_after_exit": left, "results": results}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
