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


# Failed logins per account (email) and client address: the first FREE_LOGIN_FAILURES cost nothing; after that
# each try waits a lockout that doubles from 1 s up to LOCKOUT_MAX, so a guesser gets a few tries a minute from
# an address, and the account's owner, from another address, does not wait at all. A success, or WINDOW without
# a failure, forgets them (for that address).
FREE_LOGIN_FAILURES = 5
LOCKOUT_MAX = timedelta(seconds=30)
LOGIN_FAILURE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class LoginAttempts:
    """Tries charged to an account and not yet cleared by a success: each is charged before the password is
    checked, so concurrent guesses are counted too and none costs a hash once the account is locked."""

    failures: int
    last_at: datetime
    locked_until: datetime | None


def lockout(failures: int) -> timedelta:
    if failures < FREE_LOGIN_FAILURES:
        return timedelta(0)
    return min(timedelta(seconds=2 ** (failures - FREE_LOGIN_FAILURES)), LOCKOUT_MAX)


def charge_login_attempt(current: LoginAttempts, now: datetime) -> LoginAttempts | timedelta:
    """The account's tries with this one charged, or how long to wait when it is locked (a refused try is not
    charged, so hammering a locked account does not lengthen its lockout)."""
    if current.locked_until is not None and current.locked_until > now:
        return current.locked_until - now
    failures = 1 if now - current.last_at > LOGIN_FAILURE_WINDOW else current.failures + 1
    wait = lockout(failures)
    return LoginAttempts(failures, now, now + wait if wait else None)
