"""A digest document rendered as Markdown, HTML (e-mail), plain text and JSON, and packed into a MIME
message (`email.message.EmailMessage`).

Record text is data (invariant 5): the HTML environment autoescapes everything, citations are turned
into links only after escaping, every URL is built here from identifiers (https only), and the
templates hold no script, no external images and no remote CSS. Styles are inline (mail clients drop
or ignore `<style>` unevenly); the one `<style>` block only adds the dark-mode overrides
(`prefers-color-scheme`), and `color-scheme: light dark` lets clients that darken mail on their
own know the message is ready for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import textwrap
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from synthesis.citations import CITATION_RE, citation_ids, citation_tag
from synthesis.digest import record_url

TEMPLATES = Path(__file__).resolve().parent / "templates"
# SMTP line endings; headers folded only past RFC 5322's hard limit, so the URLs in List-Unsubscribe
# stay plain (folding an unbreakable URL at 78 would turn it into an encoded word clients ignore).
POLICY = SMTP.clone(max_line_length=998)
# Bodies are quoted-printable at RFC 2045's 76 characters a line: the e-mail package encodes a body with the
# policy's max_line_length, so the parts are built under this policy and the message is then generated
# under POLICY (header folding only).
BODY_POLICY = SMTP.clone(max_line_length=76)


def _link_citations_html(text: str, *, inline_style: bool = True) -> Markup:
    """Escape `text`, then turn each bracketed citation into links to its records (styled inline for mail
    clients; `inline_style=False` for web pages, whose Content-Security-Policy forbids inline styles)."""
    escaped = str(escape(text))
    style = ' style="color:#1a56b0;text-decoration:none;"' if inline_style else ""

    def repl(match: re.Match[str]) -> str:
        ids = citation_ids(match.group(0))
        anchors = "; ".join(
            f'<a href="{escape(record_url(rid))}" class="ol-link"{style}>'
            f'{escape(citation_tag(rid)[1:-1])}</a>' for rid in ids)
        return f"[{anchors}]"

    return Markup(CITATION_RE.sub(repl, escaped))


link_citations_html = _link_citations_html  # the web view of a digest links citations the same way

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")


def md_escape(text: Any) -> str:
    """Markdown-inert text: special characters backslash-escaped, HTML brackets included."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(text or "")))


def _link_citations_md(text: str) -> str:
    out, pos = [], 0
    for match in CITATION_RE.finditer(text):
        out.append(md_escape(text[pos:match.start()]))
        ids = citation_ids(match.group(0))
        out.append("\\[" + "; ".join(f"[{citation_tag(r)[1:-1]}]({record_url(r)})" for r in ids) + "\\]")
        pos = match.end()
    out.append(md_escape(text[pos:]))
    return "".join(out)


def _md_links(links: list[dict[str, str]]) -> str:
    return " · ".join(f"[{md_escape(link['label'])}]({link['url']})" for link in links)


def _wrap(text: Any, width: int = 76, indent: str = "", first: str | None = None) -> str:
    return textwrap.fill(" ".join(str(text or "").split()), width=width, initial_indent=indent if first is None
                         else first, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _environment(autoescape: bool) -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=autoescape, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(cite_html=_link_citations_html, cite_md=_link_citations_md, md=md_escape, md_links=_md_links,
                       wrap=_wrap)
    return env


_HTML = _environment(autoescape=True)
_TEXT = _environment(autoescape=False)


def subject(doc: dict[str, Any]) -> str:
    counts = doc["counts"]
    alerts = counts.get("alerts", 0)
    parts = [f"{counts.get('shown', 0)} new item{'s' if counts.get('shown', 0) != 1 else ''}"]
    if alerts:
        parts.insert(0, f"{alerts} retraction alert{'s' if alerts != 1 else ''}")
    return f"OncoLit {doc['period']['frequency']} digest, {doc['period']['label']}: {', '.join(parts)}"


def _context(doc: dict[str, Any]) -> dict[str, Any]:
    """The document, with the sections older stored documents lack (rendered again for files or the web)."""
    return {"web": {"url": None}, **doc}


def render_html(doc: dict[str, Any]) -> str:
    return _HTML.get_template("digest.html").render(**_context(doc))


def render_text(doc: dict[str, Any]) -> str:
    return _TEXT.get_template("digest.txt").render(**_context(doc))


def render_markdown(doc: dict[str, Any]) -> str:
    return _TEXT.get_template("digest.md").render(**_context(doc))


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n"


def message_id(email: str, period: str, domain: str) -> str:
    """Deterministic: the same subscriber and period always give the same Message-ID."""
    digest = hashlib.sha256(f"{email.strip().lower()}|{period}".encode()).hexdigest()[:32]
    return f"<digest.{period}.{digest}@{domain}>"


def list_unsubscribe(token: str, *, url_template: str | None, mailto: str) -> dict[str, Any]:
    """The List-Unsubscribe header value, whether one-click (RFC 8058) applies (only with an https URL),
    and the links the body shows."""
    address = parseaddr(mailto)[1] or mailto
    mailto_url = f"mailto:{address}?subject={quote('unsubscribe ' + token)}"
    url = url_template.replace("{token}", quote(token, safe="")) if url_template else None
    header = ", ".join(f"<{u}>" for u in (url, mailto_url) if u)
    return {"header": header, "one_click": bool(url and url.startswith("https://")), "url": url,
            "mailto_url": mailto_url}


def build_message(doc: dict[str, Any], *, sender: str, fmt: str, built_at: dt.datetime, unsubscribe: str,
                  one_click: bool, list_id: str) -> EmailMessage:
    """The e-mail: text/plain (+ text/html alternative for format html), with list headers."""
    msg = EmailMessage(policy=BODY_POLICY)
    sub = doc["subscriber"]
    msg["Subject"] = doc["subject"]
    msg["From"] = sender
    msg["To"] = formataddr((sub.get("name") or "", sub["email"]))
    msg["Date"] = format_datetime(built_at.astimezone(dt.UTC))
    msg["Message-ID"] = doc["message_id"]
    msg["List-Id"] = list_id
    msg["List-Unsubscribe"] = unsubscribe
    if one_click:
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-OncoLit-Digest"] = f"{doc['period']['key']}"
    plain = render_markdown(doc) if fmt == "markdown" else render_text(doc)
    msg.set_content(plain, subtype="plain", charset="utf-8", cte="quoted-printable")
    if fmt == "html":
        msg.add_alternative(render_html(doc), subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.walk():
        part.policy = POLICY
    return msg
