"""Serving under load: `oncolit serve` on loopback takes a burst of searches and extractive answers while
/healthz is sampled; a single-request baseline is measured in the same run, on the same server.

Why this shape: the probe of issue 18 found /healthz waiting 5-10 s behind a 20-concurrent burst (one worker
thread served every route). A load balancer takes that for a dead server. The target is health ≤ 50 ms
during the burst; throughput and latency of the heavy routes are reported beside their baseline.

Setup (untimed): a fresh data dir with the first `--records` records of one shared PubMed file
(`pubmed/constructed/hoc-0001.xml.gz`), synced into a Qdrant Edge index with the default embedder, then the
real server as a separate process (`python -m oncolit.cli.main serve`, extractive: `llm.backend=none`,
`serve.workers` from `--workers` or the default). Every request asks something new (a record title cut to
its first words), so the embedding cache never answers for the model.

Timed, in order:
  baseline   `--baseline` requests one at a time (the same mix as the burst), and /healthz idle;
  burst      `--requests` requests, `--concurrency` in flight (a share `--ask-share` are POST /ask, the rest
             GET /search), while another process asks /healthz every `--health-interval` seconds (only
             samples that started inside the burst count).

Reported: per phase p50/p95/max ms and requests/s, the burst's ratio to the baseline (latency and
throughput), /healthz p50/p95/max and how many samples took over 50 ms, status counts (503 = the server
refused past `serve.max_queued`).

    .venv/bin/python -m benchmarks.serve_burst [--data ../shared/data] [--records 300] [--requests 200]
        [--concurrency 20] [--baseline 20] [--ask-share 0.2] [--workers N] [--data-dir DIR (kept, reused)]
        [--server-env ONCOLIT_SERVE__SWITCH_INTERVAL_MS=5] [--json] [--out burst.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import stamp

REPO = Path(__file__).resolve().parents[1]
SOURCE = Path("pubmed") / "constructed" / "hoc-0001.xml.gz"
HEALTH_TARGET_MS = 50.0
QUERY_WORDS = 8


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict[str, Any]:
    return {"n": len(ms), "p50_ms": _r(pct(ms, 50)), "p95_ms": _r(pct(ms, 95)), "max_ms": _r(max(ms, default=None))}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- setup ---------------------------------------------------------------------------------------------


def build_data(data_root: Path, data_dir: Path, records: int) -> list[str]:
    """Catalog + index of the first `records` records; returns their titles (the queries)."""
    from index.sync import sync
    from ingest.catalog import Catalog
    from ingest.pubmed_xml import iter_pubmed_file
    from oncolit.settings import Settings
    from oncolit.wiring import open_index

    items = []
    for item in iter_pubmed_file(data_root / SOURCE):
        if getattr(item.record, "title", ""):
            items.append(item)
        if len(items) >= records:
            break
    settings = Settings(data_dir=data_dir)
    settings.ensure_data_dir()
    with Catalog(settings.resolved_catalog_url) as catalog, open_index(settings) as handle:
        catalog.ingest_batch(items)
        sync(catalog, handle)
    return [" ".join(str(getattr(item.record, "title", "")).split()[:QUERY_WORDS]) for item in items]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, port: int, workers: int | None, log_path: Path,
                 extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ONCOLIT_DATA_DIR": str(data_dir), "ONCOLIT_LLM__BACKEND": "none",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}
    env.pop("ONCOLIT_CONFIG", None)
    if workers is not None:
        env["ONCOLIT_SERVE__WORKERS"] = str(workers)
    with log_path.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "oncolit.cli.main", "serve", "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before it was ready")
        try:
            r = httpx.get(f"{base}/healthz", timeout=2)
            if r.status_code == 200:
                return dict(r.json())
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer /healthz within {timeout:.0f} s")


# -- load ----------------------------------------------------------------------------------------------


def plan(queries: list[str], n: int, ask_share: float, offset: int) -> list[tuple[str, str]]:
    """n (kind, text) requests, asks spread evenly at `ask_share`, each text used once in the run."""
    out = []
    asks = 0.0
    for i in range(n):
        text = queries[(offset + i) % len(queries)]
        asks += ask_share
        if asks >= 1:
            asks -= 1
            out.append(("ask", text))
        else:
            out.append(("search", text))
    return out


async def one(client: Any, kind: str, text: str) -> tuple[str, int, float]:
    started = time.perf_counter()
    if kind == "ask":
        r = await client.post("/ask", json={"question": f"What is known about {text}?", "limit": 5})
    else:
        r = await client.get("/search", params={"q": text, "limit": 10})
    return kind, r.status_code, (time.perf_counter() - started) * 1000


async def run_requests(base: str, requests: list[tuple[str, str]],
                       concurrency: int) -> tuple[list[tuple[str, int, float]], float]:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        async def bounded(kind: str, text: str) -> tuple[str, int, float]:
            async with sem:
                return await one(client, kind, text)

        started = time.perf_counter()
        results = await asyncio.gather(*(bounded(k, t) for k, t in requests))
        return list(results), time.perf_counter() - started


def sample_health(base: str, interval: float, stop: Any, out: Any) -> None:
    """/healthz every `interval` seconds until `stop` is set; sends [(wall-clock start, ms, ok)] to `out`.
    Runs in its own process, as a load balancer's probe would: the burst's client shares no GIL with it."""
    import httpx

    samples: list[tuple[float, float, bool]] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        while not stop.is_set():
            at, started = time.time(), time.perf_counter()
            try:
                ok = client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                ok = False
            samples.append((at, (time.perf_counter() - started) * 1000, ok))
            stop.wait(interval)
    out.send(samples)


class HealthSampler:
    """`sample_health` in a spawned process; only the samples that started inside the burst are kept."""

    def __init__(self, base: str, interval: float) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=sample_health, args=(base, interval, self.stop, send), daemon=True)

    def start(self) -> None:
        """Start the probe and give it time to import and connect before the burst begins."""
        self._proc.start()
        time.sleep(3.0)

    def finish(self, since: float, until: float) -> tuple[list[float], int]:
        """(latencies ms, failures) of the samples that started between `since` and `until` (wall clock)."""
        self.stop.set()
        samples = self._recv.recv() if self._recv.poll(120) else []
        self._proc.join(timeout=30)
        inside = [(ms, ok) for at, ms, ok in samples if since <= at <= until]
        return [ms for ms, _ok in inside], sum(1 for _ms, ok in inside if not ok)


def phase(results: list[tuple[str, int, float]], seconds: float) -> dict[str, Any]:
    ok = [ms for _k, status, ms in results if status == 200]
    statuses: dict[str, int] = {}
    for _k, status, _ms in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    by_kind = {kind: summary([ms for k, s, ms in results if k == kind and s == 200]) for kind in ("search", "ask")}
    return {**summary(ok), "seconds": round(seconds, 2), "requests_per_s": round(len(ok) / seconds, 2),
            "statuses": statuses, "by_kind": by_kind}


# -- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="The shared data root.")
    parser.add_argument("--records", type=int, default=300)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--baseline", type=int, default=20, help="Requests one at a time before the burst.")
    parser.add_argument("--ask-share", type=float, default=0.2, help="Share of POST /ask (extractive) requests.")
    parser.add_argument("--workers", type=int, default=None, help="serve.workers (default: the setting's).")
    parser.add_argument("--health-interval", type=float, default=0.05)
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--workdir", type=Path, default=None, help="Where the data dir goes (default: a temp dir).")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="Keep the catalog + index here and reuse it on the next run (default: a fresh temp dir).")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="A setting for the server, e.g. ONCOLIT_SERVE__SWITCH_INTERVAL_MS=5; repeatable.")
    parser.add_argument("--json", action="store_true", help="Print the JSON result on stdout (else a summary).")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON result here.")
    args = parser.parse_args()

    import httpx

    result: dict[str, Any] = stamp()
    result["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                          if k not in ("json", "out")}
    with tempfile.TemporaryDirectory(prefix="oncolit-burst-", dir=args.workdir) as tmp:
        built = args.data_dir or Path(tmp) / "built"
        started = time.perf_counter()
        queries_file = built / "burst-queries.json"
        if queries_file.exists():
            queries = json.loads(queries_file.read_text())
        else:
            queries = build_data(args.data, built, args.records)
            queries_file.write_text(json.dumps(queries))
        data_dir = Path(tmp) / "data"  # the server works on a copy: a kept dir never caches a run's queries
        shutil.copytree(built, data_dir)
        result["setup_seconds"] = round(time.perf_counter() - started, 1)
        log(f"catalog + index of {len(queries)} records in {result['setup_seconds']} s; starting the server")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        extra = dict(item.split("=", 1) for item in args.server_env)
        proc = start_server(data_dir, port, args.workers, Path(tmp) / "server.log", extra)
        try:
            started = time.perf_counter()
            health = wait_ready(base, proc, args.ready_timeout)
            result["server"] = {"ready_seconds": round(time.perf_counter() - started, 1),
                                "workers": health.get("workers"), "points": health.get("points")}
            warm = plan(queries, 2, 0.5, offset=len(queries) - 2)  # untimed: first-call costs
            asyncio.run(run_requests(base, warm, 1))

            idle = []
            with httpx.Client(base_url=base, timeout=30) as client:
                for _ in range(20):
                    t0 = time.perf_counter()
                    client.get("/healthz")
                    idle.append((time.perf_counter() - t0) * 1000)
            base_results, base_seconds = asyncio.run(
                run_requests(base, plan(queries, args.baseline, args.ask_share, 0), 1))
            result["baseline"] = phase(base_results, base_seconds)
            result["healthz_idle"] = summary(idle)
            log(f"baseline: {result['baseline']['p50_ms']} ms p50, {result['baseline']['requests_per_s']} req/s")

            sampler = HealthSampler(base, args.health_interval)
            sampler.start()
            burst_plan = plan(queries, args.requests, args.ask_share, args.baseline)
            since = time.time()
            burst_results, burst_seconds = asyncio.run(run_requests(base, burst_plan, args.concurrency))
            health_ms, health_failures = sampler.finish(since, time.time())
            result["burst"] = {**phase(burst_results, burst_seconds), "concurrency": args.concurrency}
            result["healthz_during_burst"] = {**summary(health_ms), "failures": health_failures,
                                              f"over_{int(HEALTH_TARGET_MS)}ms": sum(
                                                  1 for ms in health_ms if ms > HEALTH_TARGET_MS),
                                              "target_ms": HEALTH_TARGET_MS}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
            result["server_log_tail"] = (Path(tmp) / "server.log").read_text(errors="replace")[-2000:] \
                if (Path(tmp) / "server.log").exists() else ""
    b, s = result["baseline"], result["burst"]
    result["ratios"] = {
        "burst_p50_vs_baseline_p50": round(s["p50_ms"] / b["p50_ms"], 2) if s["p50_ms"] and b["p50_ms"] else None,
        "burst_p95_vs_baseline_p95": round(s["p95_ms"] / b["p95_ms"], 2) if s["p95_ms"] and b["p95_ms"] else None,
        "throughput_vs_baseline": round(s["requests_per_s"] / b["requests_per_s"], 2)
        if b["requests_per_s"] else None,
    }
    from eval.stamp import machine

    result["load_avg_end"] = machine()["load_average"]
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        print(text)
    else:
        h = result["healthz_during_burst"]
        print(f"baseline  {b['n']} requests one at a time: p50 {b['p50_ms']} ms, p95 {b['p95_ms']} ms, "
              f"{b['requests_per_s']} req/s")
        print(f"burst     {s['n']} ok of {args.requests} at {args.concurrency} concurrent: p50 {s['p50_ms']} ms, "
              f"p95 {s['p95_ms']} ms, {s['requests_per_s']} req/s  statuses {s['statuses']}")
        print(f"ratios    {result['ratios']}")
        print(f"/healthz  during the burst: {h['n']} samples, p50 {h['p50_ms']} ms, p95 {h['p95_ms']} ms, "
              f"max {h['max_ms']} ms, {h['over_50ms']} over {HEALTH_TARGET_MS:.0f} ms")


if __name__ == "__main__":
    main()
