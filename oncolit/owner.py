"""Who holds a data directory's index: the `oncolit serve` owner file, the index's one-writer lock, and the
server's own resources for the jobs it runs.

Why: Qdrant Edge is embedded and one process at a time may open its shard (a second opener fails after about
20 s on the write-ahead log). So one process owns the index at a time, and everyone else can tell which:

- `oncolit serve` claims the data dir (`ServerClaim`): `<data dir>/server.json` holds its pid, URL, start time
  and a loopback token, readable by its user only (0600). The server keeps an exclusive `flock` on that file
  for its lifetime and removes it on exit. The lock, not the pid, says whether the server is alive: the
  kernel drops it when the process dies, so the file of a SIGKILLed server reads as stale and a reused pid
  cannot fool a reader (`running_server`). A second `serve` on the same data dir is refused.
- CLI commands that search, answer, sync or run a job find that server and use its HTTP API with the token
  (`oncolit.via_server`), so their `--json` is what they print without a server.
- Every direct opener of the embedded index (`oncolit.wiring.open_index`, backend edge) takes
  `<index dir>/writer.lock` first (`hold_index`): a second opener says who holds it and waits, and gives
  up after `index.wait_seconds` with `IndexBusy` naming the holder, never a raw WAL error.
- Inside the server, the scheduler's follow-on steps use the server's resources on the thread that owns them
  (`local_index`), instead of opening the index a second time.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TypeVar

from ingest.errors import ConfigError, IndexBusy
from oncolit.settings import Settings

if TYPE_CHECKING:
    from oncolit.resources import Resources

T = TypeVar("T")
OWNER_FILE = "server.json"
WRITER_LOCK = "writer.lock"


def say(line: str) -> None:
    """The default way a waiting command tells its user why it waits: one line on stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class ServerOwner:
    """What `<data dir>/server.json` says about the server that owns the data dir."""

    pid: int
    url: str
    started_at: str
    token: str
    data_dir: str
    scheduler: bool = False

    def describe(self) -> str:
        return f"`oncolit serve` pid {self.pid} at {self.url}"

    def is_self(self) -> bool:
        return self.pid == os.getpid()


def owner_path(settings: Settings) -> Path:
    return settings.data_dir / OWNER_FILE


def loopback_url(host: str, port: int) -> str:
    """The URL a command on this machine reaches the server at (a server on every interface is on loopback too)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _read_owner(fd: int) -> ServerOwner | None:
    """The owner in an open owner file; None while it is being written (a few ms after the server locked it)."""
    for _ in range(20):
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        if raw:
            try:
                return ServerOwner(**json.loads(raw))
            except (ValueError, TypeError):
                pass
        time.sleep(0.05)
    return None


class ServerClaim:
    """`with ServerClaim(settings, url, scheduler=...) as owner:` — this process serves the data dir until the
    block ends (the file is removed then; if the process dies first, the released lock marks it stale)."""

    def __init__(self, settings: Settings, url: str, *, scheduler: bool = False) -> None:
        self.settings, self.url, self.scheduler = settings, url, scheduler
        self._fd: int | None = None

    def __enter__(self) -> ServerOwner:
        path = owner_path(self.settings)
        self.settings.ensure_data_dir()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # the token is a credential, even in a file left by an older run
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_owner(fd)
            os.close(fd)
            raise ConfigError(f"{other.describe() if other else 'another `oncolit serve`'} already serves the data "
                              f"dir {self.settings.data_dir}: stop it first, or give this one another "
                              "ONCOLIT_DATA_DIR") from None
        owner = ServerOwner(pid=os.getpid(), url=self.url, started_at=dt.datetime.now(dt.UTC).isoformat(),
                            token=secrets.token_urlsafe(32), data_dir=str(self.settings.data_dir),
                            scheduler=self.scheduler)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(asdict(owner)).encode())
        os.fsync(fd)
        self._fd = fd
        return owner

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            owner_path(self.settings).unlink(missing_ok=True)  # still ours: we hold its lock
            os.close(self._fd)  # releases the lock
            self._fd = None


def running_server(settings: Settings) -> ServerOwner | None:
    """The live `oncolit serve` that owns `settings.data_dir`, or None (no file, a stale file, or not ours to read)."""
    try:
        fd = os.open(owner_path(settings), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_owner(fd)  # held: the server is alive
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: a server that died without cleaning up
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------- the writer lock

_HELD: dict[str, list[int]] = {}  # lock path -> [fd, depth]: a process may nest its own opens
_HELD_GUARD = threading.Lock()


def _holder(fd: int, settings: Settings) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        found = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        found = {}
    pid, command = found.get("pid"), found.get("command") or "an OncoLit command"
    server = running_server(settings)
    if server is not None and (pid is None or server.pid == pid):
        return server.describe()
    return f"`{command}` pid {pid}" if pid else f"`{command}`"


def _command() -> str:
    words = [w for w in sys.argv[1:3] if not w.startswith("-")]
    return " ".join(["oncolit", *words])


@contextmanager
def hold_index(settings: Settings, *, wait: float | None = None,
               notify: Callable[[str], None] = say) -> Iterator[None]:
    """Hold the embedded index's one-writer lock for the block; while another process holds it, say who
    (once) and wait up to `wait` seconds (default `index.wait_seconds`), then raise `IndexBusy`."""
    index_dir = settings.index_dir
    path = index_dir / WRITER_LOCK
    key = os.path.abspath(path)
    with _HELD_GUARD:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is None:
        _acquire(settings, path, key, settings.index.wait_seconds if wait is None else wait, notify)
    try:
        yield
    finally:
        with _HELD_GUARD:
            entry = _HELD[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
                fcntl.flock(entry[0], fcntl.LOCK_UN)
                os.close(entry[0])


def _acquire(settings: Settings, path: Path, key: str, wait: float, notify: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, told = time.monotonic() + wait, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(fd, settings)
            if time.monotonic() >= deadline:
                os.close(fd)
                hint = (" (search, ask, index sync|rebuild|verify and schedule run-once use the server by themselves)"
                        if holder.startswith("`oncolit serve`") else "")
                raise IndexBusy(f"the index {settings.index_dir} is still held by {holder} after {wait:.0f}s: "
                                f"wait for it to finish or stop it, then run this again{hint}") from None
            if not told:
                notify(f"index is held by {holder}; waiting… (Ctrl-C to stop)")
                told = True
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "command": _command()}).encode())
    with _HELD_GUARD:
        _HELD[key] = [fd, 1]


# ---------------------------------------------------------------------------------------- the server's own index

@dataclass
class LocalIndex:
    """The server's resources and the executor whose thread owns them (the embedding cache and llama.cpp stay
    on that thread). `run(fn)` runs `fn(resources)` there and waits: the scheduler's steps call it from the
    scheduler's thread, never from the worker itself."""

    resources: Resources
    executor: Executor

    def run(self, fn: Callable[[Resources], T]) -> T:
        return self.executor.submit(fn, self.resources).result()


_LOCAL: LocalIndex | None = None


def local_index() -> LocalIndex | None:
    """The index this process serves (inside `oncolit serve`), or None."""
    return _LOCAL


@contextmanager
def serving_locally(resources: Resources, executor: Executor) -> Iterator[LocalIndex]:
    """While the block runs, jobs in this process use `resources` (on `executor`) instead of opening the index."""
    global _LOCAL
    if _LOCAL is not None:
        raise ConfigError("this process already serves an index")
    _LOCAL = LocalIndex(resources, executor)
    try:
        yield _LOCAL
    finally:
        _LOCAL = None
