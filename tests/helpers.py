"""Small helpers shared by tests that drive the real `oncolit` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def loopback_socket() -> socket.socket:
    """A socket bound to a free loopback port (bind first when the URL must be known before the app exists)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve_on_loopback(app: Any, *, lifespan: str = "on", sock: socket.socket | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on loopback (`sock`, or a free port) in a thread; yields its base URL.
    For the browser tests, which need a real server (Chromium cannot open a TestClient)."""
    import uvicorn

    sock = sock or loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan=lifespan))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
