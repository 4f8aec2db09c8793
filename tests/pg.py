"""A throwaway PostgreSQL cluster for the tests: `initdb` + `pg_ctl` in a temp dir, loopback only.

Why a cluster per test session rather than a server the machine already runs: CI machines are fresh
(`.ci/setup` installs Debian's `postgresql` package but starts nothing), and a developer's own server
must not be touched. One cluster serves the whole session; each test gets its own *schema* (a
`search_path` in the URL), which costs a CREATE SCHEMA instead of a CREATE DATABASE and still runs
every migration from scratch.

`ONCOLIT_TEST_PG_URL` points the tests at an existing server instead (they create and drop their
schemas in it). `ONCOLIT_TEST_PG=skip` skips the PostgreSQL half of the parametrised tests; without
it a cluster that cannot start fails those tests — in CI a missing PostgreSQL is a failure, not a pass.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Read at import: the autouse `isolated_env` fixture strips ONCOLIT_* from the environment per test.
EXTERNAL_URL = os.environ.get("ONCOLIT_TEST_PG_URL", "")
OPT_OUT = os.environ.get("ONCOLIT_TEST_PG", "").lower() in {"skip", "off", "0", "no"}
_counter = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    pass


def pg_bin_dir() -> Path:
    """The directory of initdb/pg_ctl: on PATH, else the newest /usr/lib/postgresql/<n>/bin (Debian)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not candidates:
        raise PostgresUnavailable("PostgreSQL is not installed (no pg_ctl): `apt-get install postgresql` "
                                  "(.ci/setup does it), or set ONCOLIT_TEST_PG_URL, or ONCOLIT_TEST_PG=skip")
    return candidates[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_as() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as `postgres` (the Debian
    package's user) or else `nobody`."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise PostgresUnavailable("running as root with neither a `postgres` nor a `nobody` user to run PostgreSQL as")


@dataclass
class PgCluster:
    """A running cluster (or an external server): hands out a fresh schema per test."""

    base_url: str  # postgresql+psycopg://user@host:port/db
    root: Path | None = None
    bin_dir: Path | None = None
    schemas: list[str] = field(default_factory=list)

    def fresh_url(self) -> str:
        """A URL whose search_path is a new, empty schema."""
        from sqlalchemy import create_engine, text

        name = f"t_{os.getpid()}_{next(_counter)}"
        engine = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        engine.dispose()
        self.schemas.append(name)
        return url_with_schema(self.base_url, name)

    def drop(self, url: str) -> None:
        """Drop the schema of a URL from `fresh_url` (its engines must be disposed)."""
        from sqlalchemy import create_engine, text

        name = url.rsplit("search_path%3D", 1)[-1]
        engine = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SET lock_timeout = '5s'"))
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()

    def stop(self) -> None:
        if self.root is None or self.bin_dir is None:
            return
        subprocess.run([*_run_as(), str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.root / "data"),
                        "-m", "immediate", "-w"], capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def url_with_schema(base_url: str, schema: str) -> str:
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options=-csearch_path%3D{schema}"


# A test cluster trades durability for speed; the benchmark passes its own (see benchmarks/catalog_backends.py).
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


def start_cluster(settings: dict[str, str] | None = None) -> PgCluster:
    """initdb + pg_ctl start on 127.0.0.1 and a free port, with `settings` (default: durability off)."""
    if EXTERNAL_URL:
        return PgCluster(EXTERNAL_URL)
    bin_dir = pg_bin_dir()
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="oncolit-pg-"))
    if run_as:
        user = run_as[2]
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, log = root / "data", root / "server.log"
    init = subprocess.run([*run_as, str(bin_dir / "initdb"), "-D", str(data), "-U", "oncolit", "--auth=trust",
                           "-E", "UTF8", "--no-locale", "--no-sync"],
                          capture_output=True, text=True, timeout=120)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-800:]}")
    port = _free_port()
    extra = " ".join(f"-c {k}={v}" for k, v in (TEST_SETTINGS if settings is None else settings).items())
    options = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
               f"-c max_connections=200 {extra}")
    start = subprocess.run([*run_as, str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log),
                            "-o", options, "-w", "-t", "60"], capture_output=True, text=True, timeout=90)
    cluster = PgCluster(f"postgresql+psycopg://oncolit@127.0.0.1:{port}/postgres", root, bin_dir)
    if start.returncode != 0:
        tail = log.read_text(errors="replace")[-800:] if log.exists() else start.stderr
        cluster.stop()
        raise PostgresUnavailable(f"pg_ctl start failed: {tail.strip()}")
    _wait_ready(cluster.base_url)
    return cluster


def _wait_ready(url: str, timeout: float = 30.0) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()
