"""People and access: roles, API keys (stored as salted scrypt hashes) and web sessions.

A key looks like `olk_<key id>_<secret>`: the key id (8 hex digits) is public and finds the row; the
whole token is checked against the stored scrypt hash with a constant-time comparison. Keys are shown
once, at creation, and never logged, stored in clear or returned again. A web session is a random
cookie token; only its sha256 is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from typing import Literal

Role = Literal["reader", "librarian", "admin"]
ROLES: tuple[Role, ...] = ("reader", "librarian", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
KEY_PREFIX = "olk_"
KEY_RE = re.compile(r"^olk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,100})$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")

# scrypt cost: n=2**14, r=8 (16 MiB, ~30 ms): expensive to brute-force offline, cheap enough per request.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    active: bool = True

    def can(self, role: Role) -> bool:
        return self.active and RANK[self.role] >= RANK[role]


def new_token() -> tuple[str, str]:
    """(key id, full token)."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token, else None."""
    m = KEY_RE.match(token.strip())
    return m.group(1) if m else None


def hash_token(token: str, salt: bytes) -> str:
    return hashlib.scrypt(token.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32).hex()


def new_salt() -> bytes:
    return secrets.token_bytes(16)


def verify_token(token: str, salt_hex: str, stored_hash: str, cache: VerifiedKeys | None = None) -> bool:
    """Whether `token` matches the stored scrypt hash. With a `cache`, a token that matched this very hash in
    the last `cache.ttl` seconds is trusted without another scrypt (the caller still checks revocation and
    the user's state on every call, so a revoked key fails at once)."""
    if cache is not None and cache.seen(token, stored_hash):
        return True
    ok = hmac.compare_digest(hash_token(token, bytes.fromhex(salt_hex)), stored_hash)
    if ok and cache is not None:
        cache.add(token, stored_hash)
    return ok


class VerifiedKeys:
    """Tokens that passed their scrypt check recently, so a busy client does not pay ~30 ms of CPU per request.

    Only a keyed digest (HMAC with a per-process secret) of token + stored hash is kept, never the token;
    a new key hash (a changed key) misses. Bounded: past `max_entries` the oldest entries go."""

    def __init__(self, ttl: float, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._secret = secrets.token_bytes(32)
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def _digest(self, token: str, stored_hash: str) -> str:
        return hmac.new(self._secret, f"{token}\0{stored_hash}".encode(), hashlib.sha256).hexdigest()

    def seen(self, token: str, stored_hash: str) -> bool:
        if self.ttl <= 0:
            return False
        digest = self._digest(token, stored_hash)
        with self._lock:
            until = self._until.get(digest)
            if until is None:
                return False
            if until < time.monotonic():
                del self._until[digest]
                return False
            return True

    def add(self, token: str, stored_hash: str) -> None:
        if self.ttl <= 0:
            return
        digest = self._digest(token, stored_hash)
        with self._lock:
            self._until[digest] = time.monotonic() + self.ttl
            while len(self._until) > self.max_entries:
                del self._until[next(iter(self._until))]


def session_token() -> tuple[str, str]:
    """(cookie value, what the table stores)."""
    token = secrets.token_urlsafe(32)
    return token, sha256(token)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token(session: str) -> str:
    """The form token bound to a session (double submit: a page of another origin cannot read it)."""
    return hmac.new(session.encode(), b"oncolit-csrf", hashlib.sha256).hexdigest()


def check_name(name: str) -> str:
    from ingest.curation.rules import CurationError
    if not NAME_RE.match(name or ""):
        raise CurationError(f"{name!r} is not a valid user name (letters, digits, . _ @ -; up to 100)")
    return name


SEARCH_NAME_MAX = 100
SEARCH_NAME_FORBIDDEN = set('/\\?#%<>"\'&')


def check_search_name(name: str) -> str:
    """A saved search's name is part of URLs (`/curation/searches/{name}`), job ids and listings: no URL
    delimiters (`/ ? # %`), no markup characters (`< > " ' &`), no control or invisible format characters,
    no leading/trailing space, at most 100 characters. Names made before this check stay usable."""
    from ingest.curation.rules import CurationError
    bad = sorted({c for c in name if c in SEARCH_NAME_FORBIDDEN or unicodedata.category(c)[0] == "C"})
    if not name or name != name.strip() or len(name) > SEARCH_NAME_MAX or bad:
        shown = ", ".join(repr(c) for c in bad)
        raise CurationError(f"{name!r} is not a valid saved-search name: use 1-{SEARCH_NAME_MAX} characters "
                            f"without / \\ ? # % < > \" ' & or control characters, and no leading or trailing "
                            f"space{f' (found {shown})' if shown else ''}; e.g. melanoma-rct")
    return name


def check_role(role: str) -> Role:
    from ingest.curation.rules import CurationError
    if role not in ROLES:
        raise CurationError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]
