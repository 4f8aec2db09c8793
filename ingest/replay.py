"""A local HTTP server that answers E-utilities and ClinicalTrials.gov API v2 from recorded files.

Why: ingest must be testable and demonstrable offline, against the real wire formats, including
the failures the real services produce (429 with Retry-After, 5xx, slow or cut-off answers,
garbage and hostile XML). Point `pubmed.base_url` at `.eutils_url` and `ctgov.base_url` at
`.ctgov_url` and the production clients run unchanged.

    with ReplayServer(pubmed_dir, ctgov_dir, faults=FaultPlan().add("efetch", status(429, 2))) as server:
        settings.pubmed.base_url = server.eutils_url      # http://127.0.0.1:PORT/entrez/eutils/
        settings.ctgov.base_url = server.ctgov_url        # http://127.0.0.1:PORT/api/v2/

Routes: /entrez/eutils/esearch.fcgi, /entrez/eutils/efetch.fcgi (GET or POST form), and
/api/v2/studies, /api/v2/studies/{nctId} (GET). What each answers: `ingest.replay_eutils`,
`ingest.replay_ctgov`; faults: `ingest.replay_faults`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from ingest.replay_ctgov import JSON_CONTENT_TYPE, CTGovApp, CTGovCorpus
from ingest.replay_eutils import ESEARCH_RETMAX_LIMIT, XML_CONTENT_TYPE, EutilsApp, PubMedCorpus
from ingest.replay_faults import (
    BAD_JSON,
    GARBAGE,
    Fault,
    FaultPlan,
    billion_laughs_document,
    xxe_document,
)

__all__ = ["ReplayServer", "serve", "FaultPlan"]

log = logging.getLogger(__name__)

EUTILS_ROOT = "/entrez/eutils/"
CTGOV_ROOT = "/api/v2/"
MAX_FORM_BYTES = 10 * 1024 * 1024
POLL_INTERVAL = 0.05  # how often serve_forever checks for stop(); short so tests tear down quickly


@dataclass(frozen=True)
class Reply:
    """What the handler writes: status, headers and body (possibly cut short by a fault)."""

    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    declared_length: int | None = None  # Content-Length to announce when it differs from len(body)


class ReplayServer:
    """Serve PubMed and/or CT.gov folders on 127.0.0.1 in a background thread (port 0 = any free)."""

    def __init__(self, pubmed_dir: Path | None = None, ctgov_dir: Path | None = None,
                 faults: FaultPlan | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 esearch_id_limit: int = ESEARCH_RETMAX_LIMIT):
        """`esearch_id_limit` lowers PubMed's 10,000-id esearch cap, to exercise clients' window splitting."""
        if pubmed_dir is None and ctgov_dir is None:
            raise ValueError("give the replay server a PubMed folder, a CT.gov folder, or both")
        self.faults = faults if faults is not None else FaultPlan()
        self.eutils = (EutilsApp(PubMedCorpus.load(Path(pubmed_dir)), esearch_id_limit=esearch_id_limit)
                       if pubmed_dir is not None else None)
        self.ctgov = CTGovApp(CTGovCorpus.load(Path(ctgov_dir))) if ctgov_dir is not None else None
        self._host, self._port = host, port
        self._stopping = threading.Event()
        self._serving = threading.Event()
        self._stop_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._base_url: str | None = None

    # --- lifecycle ---

    def bind(self) -> ThreadingHTTPServer:
        """Open the listening socket (without serving yet); `serve()` and `start()` both use it."""
        if self._httpd is None:
            self._httpd = ThreadingHTTPServer((self._host, self._port), _handler_for(self))
            self._httpd.daemon_threads = True
            host, port = self._httpd.server_address[:2]
            self._base_url = f"http://{host}:{port}"
        return self._httpd

    def start(self) -> ReplayServer:
        """Serve in a daemon thread; returns at once."""
        httpd = self.bind()
        self._serving.set()
        self._thread = threading.Thread(target=httpd.serve_forever, args=(POLL_INTERVAL,),
                                        name="oncolit-replay", daemon=True)
        self._thread.start()
        log.info("replay server listening on %s", self.base_url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` is called from another thread."""
        httpd = self.bind()
        self._serving.set()
        httpd.serve_forever(POLL_INTERVAL)

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice and from any thread. Not restartable."""
        self._stopping.set()  # wakes handlers sleeping in a delay fault
        with self._stop_lock:
            if self._httpd is None:
                return
            if self._serving.is_set() and threading.current_thread() is not self._thread:
                self._httpd.shutdown()  # returns once serve_forever has left its loop
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd.server_close()
            self._httpd = self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- addresses ---

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the replay server is not bound yet: use it as a context manager or call start()")
        return self._base_url

    @property
    def eutils_url(self) -> str:
        return self.base_url + EUTILS_ROOT

    @property
    def ctgov_url(self) -> str:
        return self.base_url + CTGOV_ROOT

    # --- request handling (called from handler threads) ---

    def answer(self, method: str, path: str, params: dict[str, str]) -> tuple[Reply, Fault | None]:
        """The reply for one request, faults applied; also records the request in the plan."""
        service, relative = _split_route(path)
        if service is None or (service == "eutils" and self.eutils is None) or (
                service == "ctgov" and self.ctgov is None):
            return Reply(404, b"not found\n", "text/plain; charset=utf-8"), None
        fault = self.faults.take(relative, method, params)
        real = partial(self._real_reply, service, relative, params)
        return self._apply(fault, real, relative), fault

    def _real_reply(self, service: str, relative: str, params: dict[str, str]) -> Reply:
        if service == "eutils":
            assert self.eutils is not None
            response = self.eutils.handle(relative, params)
        else:
            assert self.ctgov is not None
            response = self.ctgov.handle(relative, params)
        return Reply(response.status, response.body, response.content_type)

    def _apply(self, fault: Fault | None, real: Callable[[], Reply], relative: str) -> Reply:
        if fault is None:
            return real()
        kind = fault.kind
        xml_root = "eSearchResult" if relative.startswith("esearch") else "PubmedArticleSet"
        content_type = JSON_CONTENT_TYPE if relative.startswith("studies") else XML_CONTENT_TYPE
        if kind == "status":
            headers = (("Retry-After", fault.retry_after),) if fault.retry_after else ()
            return Reply(fault.status, fault.body if fault.body is not None else _status_body(fault.status),
                         "application/json" if fault.status == 429 else "text/plain; charset=utf-8", headers)
        if kind == "delay":
            if self._stopping.wait(fault.seconds):
                return Reply(503, b"replay server stopping\n", "text/plain; charset=utf-8")
            return real()
        if kind == "truncate":
            reply = real()
            cut = reply.body[:int(len(reply.body) * fault.fraction)]
            return Reply(reply.status, cut, reply.content_type, reply.headers,
                         declared_length=len(reply.body) if fault.keep_length else None)
        if kind == "drop_records":
            return _drop_records(real(), fault.count)
        payloads = {"malformed": GARBAGE, "bad_json": BAD_JSON,
                    "billion_laughs": billion_laughs_document(xml_root), "xxe": xxe_document(xml_root)}
        return Reply(200, payloads[kind], JSON_CONTENT_TYPE if kind == "bad_json" else content_type)


def _split_route(path: str) -> tuple[str | None, str]:
    if path.startswith(EUTILS_ROOT):
        return "eutils", path[len(EUTILS_ROOT):]
    if path.startswith(CTGOV_ROOT):
        return "ctgov", path[len(CTGOV_ROOT):].rstrip("/")
    return None, path


def _status_body(code: int) -> bytes:
    if code == 429:  # what NCBI sends with a 429
        return b'{"error":"API rate limit exceeded","count":"11","limit":"10"}'
    return f"replay server: injected HTTP {code}\n".encode()


def _drop_records(reply: Reply, count: int) -> Reply:
    """Remove the last `count` <PubmedArticle> elements from an efetch answer."""
    body = reply.body
    for _ in range(count):
        start = body.rfind(b"<PubmedArticle>")
        end = body.rfind(b"</PubmedArticle>")
        if start < 0 or end < start:
            break
        body = body[:start] + body[end + len(b"</PubmedArticle>"):]
    return Reply(reply.status, body, reply.content_type, reply.headers)


def _handler_for(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_ReplayHandler):
        replay = server
    return Handler


class _ReplayHandler(BaseHTTPRequestHandler):
    """Parses GET query strings and POST forms, asks the ReplayServer, writes the reply."""

    replay: ReplayServer
    protocol_version = "HTTP/1.1"
    server_version = "OncoLitReplay/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve("GET", b"")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._write(Reply(413, b"form too large\n", "text/plain; charset=utf-8"))
            return
        self._serve("POST", self.rfile.read(length))

    def _serve(self, method: str, form: bytes) -> None:
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        params.update(parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            reply, _fault = self.replay.answer(method, url.path, params)
        except Exception:  # a replay bug must look like a server error to the client, and be visible here
            log.exception("replay server failed on %s %s", method, self.path)
            reply = Reply(500, b"replay server error\n", "text/plain; charset=utf-8")
        self._write(reply)

    def _write(self, reply: Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            length = reply.declared_length if reply.declared_length is not None else len(reply.body)
            self.send_header("Content-Length", str(length))
            for name, value in reply.headers:
                self.send_header(name, value)
            if reply.declared_length is not None:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. its timeout passed during a delay fault): nothing to tell it.
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (signature is http.server's)
        log.debug("replay %s - %s", self.address_string(), format % args)


def serve(pubmed_dir: Path | None, ctgov_dir: Path | None, host: str = "127.0.0.1", port: int = 8765,
          *, faults: FaultPlan | None = None,
          on_ready: Callable[[ReplayServer], None] | None = None) -> None:
    """Run the replay server in the foreground until interrupted (Ctrl-C); for `oncolit replay serve`.

    `on_ready` is called once the socket is bound (print the URLs there; keep the server to call
    `stop()` from another thread); port 0 picks a free port.
    """
    server = ReplayServer(pubmed_dir, ctgov_dir, faults, host=host, port=port)
    server.bind()
    if on_ready is not None:
        on_ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
