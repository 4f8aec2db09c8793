"""Delivery over a real SMTP server on loopback (aiosmtpd): the message as received, refusals retried,
one digest per period, the crash window after acceptance, retraction alerts, STARTTLS with login,
and the scheduler's local send hour."""

from __future__ import annotations

import datetime as dt
import email
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ingest.catalog import Catalog
from ingest.catalog import schema as t
from oncolit.delivery import render, sendlog
from oncolit.delivery.run import run_digests
from oncolit.delivery.settings import SmtpSettings
from oncolit.delivery.smtp import DeliveryError, send
from oncolit.delivery.subscribers import add_subscriber, get_subscriber
from synthesis import digest as dg
from tests.conftest import REPO
from tests.test_digest import (
    DAY,
    NEJM,
    free_port,
    hostile_article,
    make_settings,
    melanoma_topics,
    new_article,
    real_catalog,
    retraction_notice,
    smtp_server,
)

ANA = "ana@example.org"


@pytest.fixture
def catalog(shared_data: Path, isolated_env: Path, catalog_url: str) -> Iterator[Catalog]:
    """Subscribers, digests and the send log on SQLite and on PostgreSQL in turn (conftest `catalog_url`)."""
    with real_catalog(shared_data, isolated_env, catalog_url) as cat:
        yield cat


@pytest.fixture
def smtp_sink() -> Iterator[tuple[object, int]]:
    with smtp_server() as server:
        yield server


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: set[str] = set()
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self.tags.add(tag)
        self.hrefs += [v for k, v in attrs if k == "href" and v]
        self.handlers += [k for k, _ in attrs if k.startswith("on")]


def _digests(catalog: Catalog) -> int:
    with catalog.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(t.digests)).scalar_one()


def test_received_message_has_both_parts_correct_links_and_escaped_titles(catalog: Catalog, smtp_sink,
                                                                           isolated_env: Path) -> None:
    sink, port = smtp_sink
    catalog.ingest_batch([hostile_article(catalog)])
    settings = make_settings(isolated_env, smtp_port=port, unsubscribe_url="https://oncolit.test/u?t={token}")
    sub = add_subscriber(catalog, ANA, melanoma_topics(), name='Ana <b>"A"</b>')
    report = run_digests(settings, catalog, day=DAY, llm=None, scorer=None)
    assert report["status"] == "ok" and report["sent"] == 1, report
    assert len(sink.messages) == 1
    msg = _parse(sink.messages[0])
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    assert plain is not None and html_part is not None
    text, html = plain.get_content(), html_part.get_content()
    # Headers: deterministic Message-ID, list headers, one-click unsubscribe with the subscriber's token.
    assert msg["Message-ID"] == render.message_id(ANA, DAY.isoformat(), "oncolit.test")
    assert msg["To"].addresses[0].addr_spec == ANA
    assert f"<https://oncolit.test/u?t={sub.token}>" in msg["List-Unsubscribe"]
    assert "<mailto:digests@oncolit.test?subject=unsubscribe%20" in msg["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # No script anywhere; the hostile title is escaped text, not markup.
    parser = _Links()
    parser.feed(html)
    assert "script" not in parser.tags and "img" not in parser.tags and not parser.handlers
    assert not re.search(r"<\s*script", html, re.I)
    assert "BRAF melanoma &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in html
    assert 'BRAF melanoma <script>alert("x")</script>' in text  # plain text carries it as text
    assert "Ana &lt;b&gt;&#34;A&#34;&lt;/b&gt;" in html
    # Links: each item's PubMed/DOI/CT.gov link, https only, identifiers quoted; citations link too.
    stored = sendlog.get_digest(catalog, sub.id, DAY.isoformat())
    expected = {link["url"] for tp in stored.document["topics"] for item in tp["items"] for link in item["links"]}
    assert expected <= set(parser.hrefs)
    assert "https://pubmed.ncbi.nlm.nih.gov/22663011/" in parser.hrefs
    assert "https://doi.org/10.1056/NEJMoa1203421" in parser.hrefs
    assert "https://doi.org/10.9999/x%3Cy%3E%26z%2299990001" in parser.hrefs
    assert all(h.startswith(("https://", "mailto:")) for h in parser.hrefs)
    for rid in stored.document["cited"]:
        assert dg.record_url(rid) in parser.hrefs and dg.record_url(rid) in text
        assert catalog.exists(rid)


def test_refusal_is_retried_next_run_and_sent_once(catalog: Catalog, smtp_sink, isolated_env: Path) -> None:
    sink, port = smtp_sink
    settings = make_settings(isolated_env, smtp_port=port)
    sub = add_subscriber(catalog, ANA, melanoma_topics())
    sink.refuse_rcpt = 1
    first = run_digests(settings, catalog, day=DAY, llm=None, scorer=None)
    assert first["status"] == "failed" and first["results"][0]["status"] == "failed"
    assert "550" in first["results"][0]["error"] and sink.messages == []
    row = sendlog.log_row(catalog, sub.id, DAY.isoformat())
    assert row["status"] == "failed" and row["attempts"] == 1 and "550" in row["last_error"]
    built_at = sendlog.get_digest(catalog, sub.id, DAY.isoformat()).built_at

    second = run_digests(settings, catalog, day=DAY, llm=None, scorer=None)
    assert [r["status"] for r in second["results"]] == ["sent"] and second["built"] == 0
    assert len(sink.messages) == 1
    row = sendlog.log_row(catalog, sub.id, DAY.isoformat())
    assert row["status"] == "sent" and row["attempts"] == 2 and row["sent_at"] is not None

    third = run_digests(settings, catalog, day=DAY, llm=None, scorer=None)
    assert [r["status"] for r in third["results"]] == ["already_sent"]
    assert len(sink.messages) == 1 and _digests(catalog) == 1
    assert sendlog.get_digest(catalog, sub.id, DAY.isoformat()).built_at == built_at  # never rebuilt


def test_failed_send_of_an_earlier_period_is_retried_by_a_later_run(catalog: Catalog, smtp_sink,
                                                                    isolated_env: Path) -> None:
    sink, port = smtp_sink
    sub = add_subscriber(catalog, ANA, melanoma_topics())
    down = make_settings(isolated_env, smtp_port=free_port())  # nothing listens there
    assert run_digests(down, catalog, day=DAY, llm=None, scorer=None)["results"][0]["status"] == "failed"
    up = make_settings(isolated_env, smtp_port=port)
    later = run_digests(up, catalog, day=DAY + dt.timedelta(days=1), llm=None, scorer=None)
    statuses = {r["period"]: r["status"] for r in later["results"]}
    assert statuses == {DAY.isoformat(): "sent", (DAY + dt.timedelta(days=1)).isoformat(): "empty"}
    assert len(sink.messages) == 1 and _parse(sink.messages[0])["X-OncoLit-Digest"] == DAY.isoformat()
    assert sendlog.log_row(catalog, sub.id, DAY.isoformat())["attempts"] == 2


_CHILD = """
import datetime as dt, sys
from pathlib import Path
from ingest.catalog import Catalog
from oncolit.delivery.run import run_digests
from tests.test_digest import make_settings
settings = make_settings(Path(sys.argv[1]), smtp_port=int(sys.argv[2]))
with Catalog(sys.argv[4]) as catalog:
    run_digests(settings, catalog, day=dt.date.fromisoformat(sys.argv[3]), llm=None, scorer=None)
print("the SMTP server should have killed this process before it got here")
"""


def test_killed_after_acceptance_resends_with_the_same_message_id(catalog: Catalog, smtp_sink,
                                                                  isolated_env: Path) -> None:
    sink, port = smtp_sink
    sub = add_subscriber(catalog, ANA, melanoma_topics())
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(isolated_env), str(port), DAY.isoformat(),
                              catalog.url],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sink.kill_pid = child.pid  # the server kills it right after accepting DATA
    out, err = child.communicate(timeout=120)
    assert child.returncode == -9, (out, err)
    assert len(sink.messages) == 1
    row = sendlog.log_row(catalog, sub.id, DAY.isoformat())
    assert row["status"] == "pending" and row["attempts"] == 1  # accepted, but never logged

    report = run_digests(make_settings(isolated_env, smtp_port=port), catalog, day=DAY, llm=None, scorer=None)
    assert [r["status"] for r in report["results"]] == ["sent"] and report["built"] == 0
    assert len(sink.messages) == 2
    first, again = _parse(sink.messages[0]), _parse(sink.messages[1])
    assert first["Message-ID"] == again["Message-ID"] == render.message_id(ANA, DAY.isoformat(), "oncolit.test")
    assert sink.messages[0] == sink.messages[1]  # the same bytes: the stored message, not a rebuild
    assert sendlog.log_row(catalog, sub.id, DAY.isoformat())["attempts"] == 2


def test_retraction_of_a_record_sent_yesterday_leads_todays_digest(catalog: Catalog, smtp_sink,
                                                                    isolated_env: Path) -> None:
    sink, port = smtp_sink
    settings = make_settings(isolated_env, smtp_port=port)
    sub = add_subscriber(catalog, ANA, melanoma_topics())
    yesterday, today = DAY - dt.timedelta(days=1), DAY
    assert run_digests(settings, catalog, day=yesterday, llm=None, scorer=None)["sent"] == 1
    assert NEJM in sendlog.get_digest(catalog, sub.id, yesterday.isoformat()).item_ids

    catalog.ingest_batch([retraction_notice(catalog, "22663011"),
                          new_article(catalog, "99990002", "Adjuvant BRAF and MEK inhibitor therapy in melanoma")])
    assert catalog.get(NEJM)["retracted"]
    report = run_digests(settings, catalog, day=today, llm=None, scorer=None)
    assert report["sent"] == 1
    stored = sendlog.get_digest(catalog, sub.id, today.isoformat())
    assert stored.alert_ids == [NEJM] and stored.item_ids == ["pubmed:99990002"]
    alert = stored.document["alerts"][0]
    assert alert["reason"] == "retracted" and alert["notices"][0]["record_id"] == "pubmed:99990077"
    msg = _parse(sink.messages[-1])
    assert "1 retraction alert" in msg["Subject"]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    for body, alert_mark, topic_mark in ((text, "RETRACTION ALERT", "== Melanoma =="),
                                         (html, "Retraction alert</h2>", ">Melanoma</h2>")):
        alert_at, topic_at = body.find(alert_mark), body.find(topic_mark)
        assert 0 <= alert_at < topic_at, "the alert leads the digest"
        assert "22663011" in body[alert_at:topic_at] and "retraction notice" in body[alert_at:topic_at].lower()
    yesterday_msg = _parse(sink.messages[0]).get_body(preferencelist=("plain",)).get_content()
    assert "RETRACTION ALERT" not in yesterday_msg
    # The alert is given once.
    catalog.ingest_batch([new_article(catalog, "99990003", "BRAF melanoma cohort")])
    run_digests(settings, catalog, day=today + dt.timedelta(days=1), llm=None, scorer=None)
    assert sendlog.get_digest(catalog, sub.id, (today + dt.timedelta(days=1)).isoformat()).alert_ids == []


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_starttls_and_login(tmp_path: Path) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        return AuthResult(success=auth_data.login == b"oncolit" and auth_data.password == b"s3cret")

    with smtp_server(tls_context=context, require_starttls=True, authenticator=authenticator,
                     auth_require_tls=True) as (sink, port):
        raw = b"From: a@oncolit.test\r\nTo: b@example.org\r\nSubject: t\r\nMessage-ID: <x@y>\r\n\r\nhello\r\n"
        cfg = SmtpSettings(host="127.0.0.1", port=port, starttls=True, username="oncolit", password="s3cret",
                           ca_file=cert, sender="digests@oncolit.test", timeout=10)
        send(cfg, raw, "b@example.org")
        assert len(sink.messages) == 1 and b"hello" in sink.messages[0]
        with pytest.raises(DeliveryError):  # an untrusted certificate is refused
            send(cfg.model_copy(update={"ca_file": None}), raw, "b@example.org")
        with pytest.raises(DeliveryError):  # the server requires STARTTLS before anything else
            send(cfg.model_copy(update={"starttls": False, "username": None}), raw, "b@example.org")
        assert len(sink.messages) == 1


def test_scheduler_sends_at_each_subscribers_local_hour(catalog: Catalog, smtp_sink, isolated_env: Path) -> None:
    sink, port = smtp_sink
    settings = make_settings(isolated_env, smtp_port=port, send_hour=7)
    add_subscriber(catalog, "paris@example.org", melanoma_topics(), timezone="Europe/Paris")
    add_subscriber(catalog, "auckland@example.org", melanoma_topics(), timezone="Pacific/Auckland",
                   frequency="weekly")
    # 05:30 UTC on Friday 27 Nov = 06:30 in Paris (not yet), 18:30 in Auckland (weekly: Monday 07:00 passed).
    early = dt.datetime(2026, 11, 27, 5, 30, tzinfo=dt.UTC)
    report = run_digests(settings, catalog, early, llm=None, scorer=None)
    statuses = {r["subscriber"]: (r["period"], r["status"]) for r in report["results"]}
    assert statuses == {"paris@example.org": ("2026-11-27", "not_due"), "auckland@example.org": ("2026-W48", "sent")}
    later = early + dt.timedelta(hours=1)  # 07:30 in Paris
    report = run_digests(settings, catalog, later, llm=None, scorer=None)
    statuses = {r["subscriber"]: (r["period"], r["status"]) for r in report["results"]}
    assert statuses == {"paris@example.org": ("2026-11-27", "sent"),
                        "auckland@example.org": ("2026-W48", "already_sent")}
    # 23:30 UTC is already Saturday in Paris: a new period, due at 07:00 local.
    report = run_digests(settings, catalog, dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.UTC), llm=None, scorer=None)
    assert {r["subscriber"]: (r["period"], r["status"]) for r in report["results"]}["paris@example.org"] == \
        ("2026-11-28", "not_due")
    assert len(sink.messages) == 2
    assert get_subscriber(catalog, "paris@example.org").timezone == "Europe/Paris"
