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


def verify_token(token: str, salt_hex: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token, bytes.fromhex(salt_hex)), stored_hash)


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


def check_role(role: str) -> Role:
    from ingest.curation.rules import CurationError
    if role not in ROLES:
        raise CurationError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]
