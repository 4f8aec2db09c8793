"""Parse + catalog throughput against bare `Bio.Entrez.read` on the same PubMed XML, in one run.

Both sides start from the same decompressed bytes in memory, so the ratio measures our parser and
catalog writes, not disk or gzip. Target: OncoLit's parse-and-write path costs at most 2x the bare
Biopython parse.

    .venv/bin/python -m benchmarks.ingest_throughput [--data ../shared/data] [--repeat 5] [--out results.json]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from Bio import Entrez

from benchmarks.common import stamp
from ingest.catalog import Catalog
from ingest.pubmed_xml import parse_pubmed_xml

REPO = Path(__file__).resolve().parents[1]


def load_payloads(data: Path) -> list[bytes]:
    files = sorted((data / "pubmed" / "constructed").glob("*.xml.gz"))
    files += [data / "pubmed" / "real" / "biomcp" / "efetch_citation_22663011.xml"]
    return [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes() for p in files]


def bare_biopython(payloads: list[bytes]) -> int:
    return sum(len(Entrez.read(io.BytesIO(p))["PubmedArticle"]) for p in payloads)


def oncolit_path(payloads: list[bytes], batch_size: int) -> int:
    with tempfile.TemporaryDirectory() as tmp, Catalog(f"sqlite:///{tmp}/catalog.sqlite") as catalog:
        n = 0
        for payload in payloads:
            items = parse_pubmed_xml(payload)
            for i in range(0, len(items), batch_size):
                catalog.ingest_batch(items[i:i + batch_size])
            n += len(items)
        return n


def timed(fn, *args) -> tuple[int, float]:
    start = time.perf_counter()
    n = fn(*args)
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    started = stamp()
    payloads = load_payloads(args.data)
    base_times, ours_times = [], []
    for _ in range(args.repeat):  # interleaved so machine noise hits both sides alike
        n_base, t = timed(bare_biopython, payloads)
        base_times.append(t)
        n_ours, t = timed(oncolit_path, payloads, args.batch_size)
        ours_times.append(t)
    base, ours = statistics.median(base_times), statistics.median(ours_times)
    result = {
        "benchmark": "ingest_throughput", "records": n_ours, "baseline_records": n_base,
        "baseline_bio_entrez_read_rps": round(n_base / base, 1), "oncolit_parse_and_catalog_rps": round(n_ours / ours, 1),
        "cost_ratio": round(ours / base, 3), "target_ratio": 2.0, "repeat": args.repeat,
        "batch_size": args.batch_size, **started,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
