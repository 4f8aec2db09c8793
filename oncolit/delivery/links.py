"""Signed links in a digest: one-click unsubscribe (RFC 8058) and the web view of a whole digest, both served
by `oncolit serve` (`oncolit.web.digest_pages`).

Why signed, not stored. A link in an e-mail must work without logging in, for years, from any mail client,
and must not let anyone unsubscribe or read someone else's digest by guessing. An HMAC-SHA256 over what the
link acts on, keyed by `digest.secret`, gives exactly that without a table of issued tokens: the server
recomputes the signature and compares in constant time. The subscriber's address is inside the signed text,
so a link stops working when its subscriber is removed, even if the id is reused later. Rotating the secret
voids every link already sent (the mailto address in `List-Unsubscribe` keeps working).

    unsubscribe:  <base>/unsubscribe/<id>.<sig>          sig = HMAC(secret, "unsubscribe|<id>|<email>")
    web view:     <base>/digests/<id>/<period>?sig=<sig>  sig = HMAC(secret, "digest|<id>|<period>|<email>")

Signatures are the first 32 characters (192 bits) of the URL-safe base64 digest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import quote

SIGNATURE_CHARS = 32


@dataclass(frozen=True)
class Signer:
    secret: bytes

    def _sign(self, *parts: str) -> str:
        mac = hmac.new(self.secret, "|".join(parts).encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")[:SIGNATURE_CHARS]

    def unsubscribe_token(self, subscriber_id: int, email: str) -> str:
        return f"{subscriber_id}.{self._sign('unsubscribe', str(subscriber_id), email.strip().lower())}"

    def digest_signature(self, subscriber_id: int, period: str, email: str) -> str:
        return self._sign("digest", str(subscriber_id), period, email.strip().lower())

    def check_unsubscribe(self, token: str, email: str) -> bool:
        return hmac.compare_digest(token.encode("utf-8"),
                                   self.unsubscribe_token(token_subscriber(token) or -1, email).encode("utf-8"))

    def check_digest(self, subscriber_id: int, period: str, email: str, signature: str) -> bool:
        return hmac.compare_digest(signature.encode("utf-8"),
                                   self.digest_signature(subscriber_id, period, email).encode("utf-8"))


def signer(secret: str | None) -> Signer | None:
    """A signer for `digest.secret`; None when no secret is set (then digests carry no signed links)."""
    return Signer(secret.encode("utf-8")) if secret else None


def token_subscriber(token: str) -> int | None:
    """The subscriber id an unsubscribe token names (not yet verified), or None when it is malformed."""
    head, dot, sig = token.partition(".")
    return int(head) if dot and head.isdigit() and len(head) <= 12 and len(sig) == SIGNATURE_CHARS else None


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{quote(token, safe='.')}"


def digest_url(base_url: str, subscriber_id: int, period: str, signature: str) -> str:
    return f"{base_url.rstrip('/')}/digests/{subscriber_id}/{quote(period, safe='')}?sig={quote(signature, safe='')}"
