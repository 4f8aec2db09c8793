"""Pages a digest links to, served by `oncolit serve` without a login: the web view of a whole digest (every
topic, the items the e-mail had no room for) and the one-click unsubscribe (RFC 8058).

Both are reached only through links signed with `digest.secret` (`oncolit.delivery.links`); a link that does
not verify answers 403 with a page that says what to do. Unsubscribing takes a POST — the mail provider's
one-click request (`List-Unsubscribe=One-Click`) or the button on the confirm page — and never a GET, because
link scanners and previews fetch every URL in a message.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ingest.errors import RecordNotFound
from oncolit.delivery import links, sendlog
from oncolit.delivery.render import link_citations_html
from oncolit.delivery.settings import delivery_settings
from oncolit.delivery.subscribers import Subscriber, get_subscriber, set_active
from oncolit.web.deps import WebState
from oncolit.web.pages import ENV, SECURITY_HEADERS

ENV.filters.setdefault("cite_html", lambda text: link_citations_html(text, inline_style=False))
FORBIDDEN = ("This link is not valid: it may have been changed, or the server's signing key was rotated. "
             "Use the link in your latest digest, or reply to the digest to reach the people who run it.")


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(ENV.get_template(template).render(**context), status_code=status, headers=SECURITY_HEADERS)


def build(state: WebState) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def signer(request: Request) -> links.Signer | None:
        _, cfg = delivery_settings(state.settings_for(request))
        return links.signer(cfg.secret.get_secret_value() if cfg.secret else None)

    def subscriber(request: Request, subscriber_id: int | None) -> Subscriber | None:
        if subscriber_id is None:
            return None
        try:
            return get_subscriber(state.catalog(request), subscriber_id)
        except RecordNotFound:
            return None

    def unsubscribe_target(request: Request, token: str) -> Subscriber | None:
        sign = signer(request)
        sub = subscriber(request, links.token_subscriber(token))
        if sign is None or sub is None or not sign.check_unsubscribe(token, sub.email):
            return None
        return sub

    @router.get("/digests/{subscriber_id}/{period}", response_class=HTMLResponse)
    def digest_view(request: Request, subscriber_id: int, period: str, sig: str = "") -> HTMLResponse:
        sign = signer(request)
        sub = subscriber(request, subscriber_id)
        if sign is None or sub is None or not sign.check_digest(subscriber_id, period, sub.email, sig):
            return _page("digest_message.html", 403, title="Link not valid", message=FORBIDDEN)
        stored = sendlog.get_digest(state.catalog(request), subscriber_id, period)
        if stored is None:
            return _page("digest_message.html", 404, title="Digest not found",
                         message="This digest is no longer stored on the server.")
        return _page("digest_view.html", doc=stored.document, title=stored.document.get("subject", "Digest"))

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe_confirm(request: Request, token: str) -> HTMLResponse:
        sub = unsubscribe_target(request, token)
        if sub is None:
            return _page("digest_message.html", 403, title="Link not valid", message=FORBIDDEN)
        return _page("unsubscribe.html", title="Unsubscribe", email=sub.email, active=sub.active,
                     action=f"/unsubscribe/{token}")

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe(request: Request, token: str) -> HTMLResponse:
        """RFC 8058: the body is `List-Unsubscribe=One-Click` from a mail provider, or the confirm page's form;
        either way the signed token is the whole authority (no cookie, no CSRF token: the link is the secret)."""
        sub = unsubscribe_target(request, token)
        if sub is None:
            return _page("digest_message.html", 403, title="Link not valid", message=FORBIDDEN)
        if sub.active:
            set_active(state.catalog(request), sub.id, False)
        return _page("digest_message.html", title="Unsubscribed",
                     message=f"{sub.email} will receive no more OncoLit digests.")

    return router
