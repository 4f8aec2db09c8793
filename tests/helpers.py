"""Small helpers shared by tests that drive the real `oncolit` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ONCOLIT = [sys.executable, "-m", "oncolit.cli.main"]


def run_cli(*args: str, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `oncolit ARGS` in a subprocess with the current (isolated) environment plus `env`."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([*ONCOLIT, *args], capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"oncolit {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def cli_json(*args: str, env: dict[str, str] | None = None, expect: int = 0) -> Any:
    """`oncolit ARGS --json`, parsed; the exit code must be `expect` (3: partial work, see README)."""
    proc = run_cli(*args, "--json", env=env, check=False)
    if proc.returncode != expect:
        raise AssertionError(f"oncolit {' '.join(args)} exited {proc.returncode}, not {expect}:\n{proc.stderr}")
    return json.loads(proc.stdout)


def pubmed_env(eutils_url: str, **extra: str) -> dict[str, str]:
    """Settings that point the real PubMed client at a replay server, fast."""
    return {"ONCOLIT_PUBMED__BASE_URL": eutils_url, "ONCOLIT_PUBMED__REQUESTS_PER_SECOND": "100",
            "ONCOLIT_PUBMED__RETRY__BACKOFF_BASE": "0.05", "ONCOLIT_PUBMED__RETRY__TIMEOUT": "5", **extra}


def constructed_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "pubmed" / "constructed").glob("*.xml.gz"))
