"""A cross-process lock so a manual `oncolit ingest …` and a scheduled run never overlap.

On SQLite: `flock` on a file in the data directory, released by the kernel when the process dies, so
a SIGKILLed ingest never leaves a stale lock behind. On PostgreSQL the catalog may be shared by many
machines, so the lock lives in the database: a session advisory lock (`AdvisoryLock`). `job_lock`
picks one by the catalog URL; both follow `IngestLock`.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from ingest.errors import OncoLitError


class LockBusy(OncoLitError):
    """Another OncoLit process holds the lock."""


class ProcessLock:
    def __init__(self, path: Path, *, wait: float = 0.0):
        self.path = path
        self.wait = wait
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockBusy(f"another OncoLit job is running ({holder}); wait for it to finish "
                                   "or check `oncolit schedule list`") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 64).decode(errors="replace") or "unknown process"
    except OSError:
        return "unknown process"


class IngestLock(Protocol):
    """What the ingest (and digest) jobs hold while they run: one holder at a time."""

    def acquire(self) -> None: ...

    def release(self) -> None: ...

    def __enter__(self) -> IngestLock: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own: held across every machine that
    shares the catalog, and released by the server when the holder's connection drops — at once for a
    killed process, within about a minute (TCP keepalives) for a machine that vanished — so it is never
    left stale, as `flock` is not on one machine."""

    def __init__(self, url: str, name: str, *, wait: float = 0.0):
        from ingest.catalog.dialect import lock_key

        self.url, self.name, self.wait = url, name, wait
        self.key = lock_key(name)
        self._engine: Any = None
        self._conn: Any = None

    def acquire(self) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
                               connect_args={"application_name": f"oncolit {self.name} {_holder()}"[:63]})
        conn = engine.connect()
        deadline = time.monotonic() + self.wait
        try:
            # A holder whose machine vanishes (power, network) sends no FIN: the server's TCP keepalives,
            # two hours by default, are what end its session. Probing this session after 30 s idle lets
            # the lock go within about a minute instead. (Ignored on a Unix socket, where a dead peer is seen.)
            for setting, value in (("tcp_keepalives_idle", 30), ("tcp_keepalives_interval", 10),
                                   ("tcp_keepalives_count", 3)):
                conn.execute(text(f"SET {setting} = {value}"))
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one():
                if time.monotonic() >= deadline:
                    holder = self._holder(conn)
                    raise LockBusy(f"another OncoLit job is running ({holder}, on the shared catalog); wait for "
                                   "it to finish or check `oncolit schedule list`")
                time.sleep(0.1)
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        self._engine, self._conn = engine, conn

    def _holder(self, conn: Any) -> str:
        from sqlalchemy import text

        row = conn.execute(text(
            "SELECT a.application_name, a.client_addr FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.objsubid = 1"), {"hi": (self.key >> 32) & 0xFFFFFFFF, "lo": self.key & 0xFFFFFFFF}).first()
        if row is None:
            return "unknown process"
        name = (row.application_name or "").removeprefix(f"oncolit {self.name} ")
        return f"{name or 'a client'} from {row.client_addr or 'a local socket'}"

    def release(self) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            finally:
                self._conn.close()
                self._engine.dispose()
                self._conn = self._engine = None

    def __enter__(self) -> AdvisoryLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def job_lock(catalog_url: str, data_dir: Path, name: str = "ingest", *, wait: float = 0.0) -> IngestLock:
    """The lock for a job over this catalog, chosen by its URL: an advisory lock on PostgreSQL (shared
    by every machine on that catalog), else `<data dir>/<name>.lock` (one machine, one data dir)."""
    if catalog_url.startswith(("postgresql", "postgres://")):
        from ingest.catalog.dialect import with_driver

        return AdvisoryLock(with_driver(catalog_url), f"oncolit:{name}", wait=wait)
    return ProcessLock(data_dir / f"{name}.lock", wait=wait)


def _holder() -> str:
    return f"{socket.gethostname()}:pid {os.getpid()}"
