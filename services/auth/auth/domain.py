"""The rules of the auth service: pure, no I/O."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

CUSTOMER = "customer"
ADMIN = "admin"

PASSWORD_MIN_LENGTH = 8
# argon2 hashes any length, but an upper bound keeps one request's work (and body) small.
PASSWORD_MAX_LENGTH = 128
NAME_MAX_LENGTH = 200
REASON_MAX_LENGTH = 500


def normalise_email(email: str) -> str:
    """One spelling per mailbox: Ann@Example.COM and ann@example.com are the same account."""
    return email.strip().lower()


def normalise_name(name: str | None) -> str | None:
    if name is None or not name.strip():
        return None
    return name.strip()


def access_claims(
    *, user_id: int, email: str, role: str, now: datetime, lifetime: timedelta, token_id: str | None = None
) -> dict[str, object]:
    """The claims of an access token (docs/contract.md section 2): sub is the user id as a string."""
    return {
        "sub": str(user_id),
        "email": email,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "jti": token_id or uuid.uuid4().hex,
    }


def refresh_token_hash(token: str) -> str:
    """Refresh tokens are stored only as this hash, so a leaked table holds no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


class RefreshVerdict(str, Enum):
    USABLE = "usable"
    REUSED = "reused"  # spent already: someone replays it, so the whole login is compromised
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class StoredRefreshToken:
    expires_at: datetime
    spent_at: datetime | None
    revoked_at: datetime | None


def judge_refresh(token: StoredRefreshToken, now: datetime) -> RefreshVerdict:
    """Revoked wins; a spent token is a reuse even when it has expired since, as its successor may still live."""
    if token.revoked_at is not None:
        return RefreshVerdict.REVOKED
    if token.spent_at is not None:
        return RefreshVerdict.REUSED
    if token.expires_at <= now:
        return RefreshVerdict.EXPIRED
    return RefreshVerdict.USABLE


class BanDecision(str, Enum):
    BAN = "ban"
    ALREADY_BANNED = "already banned"  # answered like a ban, but nothing changes and nothing is published
    SELF = "self"  # an admin banning themself would lock the shop's staff out by mistake


def decide_ban(*, admin_id: int, user_id: int, already_banned: bool) -> BanDecision:
    if admin_id == user_id:
        return BanDecision.SELF
    if already_banned:
        return BanDecision.ALREADY_BANNED
    return BanDecision.BAN
