"""Use cases of the auth service, between the routes and the SQL.

Each opens its transaction on the pool, asks the pure domain, writes through db and adds its events to the
outbox in that same transaction. Auth consumes no events, so no use case runs in a consumer's transaction.

Accounts: register, ensure_admin (at every start, from main.py), current_account (me), list_users,
ensure_active_admin (the admin routes' check).
Tokens: login, refresh.
Bans: ban_user.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from shop_events import add_event
from shop_events.catalogue import UserBanned, UserRegistered
from shop_events.db_types import DbConnection

from . import db
from .domain import (
    ADMIN,
    BanDecision,
    RefreshVerdict,
    StoredRefreshToken,
    charge_login_attempt,
    decide_ban,
    judge_refresh,
    normalise_email,
    refresh_token_hash,
)
from .passwords import hash_password, needs_rehash, password_matches, spend_a_check
from .schemas import TokenPair
from .tokens import TokenIssuer, new_refresh_token


class EmailTaken(Exception):
    def __init__(self) -> None:
        super().__init__("this email is already registered")


class WrongCredentials(Exception):
    def __init__(self) -> None:
        super().__init__("wrong email or password")


class TooManyLoginAttempts(Exception):
    def __init__(self, wait: timedelta) -> None:
        self.retry_after = max(1, math.ceil(wait.total_seconds()))
        super().__init__(f"too many failed logins for this account; try again in {self.retry_after} s")


class AccountBanned(Exception):
    def __init__(self) -> None:
        super().__init__("this account is banned")


class RefreshRefused(Exception):
    """Unknown, spent, expired or revoked, or its user is banned; the message says which."""


class AccountGone(LookupError):
    def __init__(self) -> None:
        super().__init__("this token's account does not exist")


class UserNotFound(LookupError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"no user {user_id}")


class SelfBan(Exception):
    def __init__(self) -> None:
        super().__init__("an admin can not ban themself")


class NotAnActiveAdmin(Exception):
    def __init__(self) -> None:
        super().__init__("admin only")


# ---- accounts ----


async def register(pool: asyncpg.Pool, email: str, name: str | None, password: str) -> asyncpg.Record:
    """A new customer (UserRegistered)."""
    password_hash = await hash_password(password)
    async with pool.acquire() as conn, conn.transaction():
        user = await db.insert_customer(conn, email, name, password_hash)
        if user is None:
            raise EmailTaken()
        await add_event(conn, UserRegistered(user_id=user["id"], email=user["email"], name=user["name"]))
    return user


async def ensure_admin(pool: asyncpg.Pool, email: str, name: str, password: str) -> None:
    """The first admin, created or updated (password, role) at every start.

    One upsert, so replicas starting together end with one admin. A ban stays: other services keep it too.
    No UserRegistered: the admin did not sign up as a customer.
    """
    password_hash = await hash_password(password)
    async with pool.acquire() as conn:
        await db.upsert_admin(conn, normalise_email(email), name, password_hash)


async def current_account(pool: asyncpg.Pool, user_id: int) -> asyncpg.Record:
    # Read from the database, not the token, so `banned` and `role` are current.
    user = await db.user_by_id(pool, user_id)
    if user is None:
        raise AccountGone()
    return user


async def list_users(pool: asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    return await db.list_users(pool, limit, offset)


async def ensure_active_admin(pool: asyncpg.Pool, user_id: int) -> None:
    """The token says admin; the database must agree now (a banned or demoted admin's token still lives 15 min)."""
    row = await db.user_by_id(pool, user_id)
    if row is None or row["banned"] or row["role"] != ADMIN:
        raise NotAnActiveAdmin()


# ---- tokens ----


async def login(pool: asyncpg.Pool, issuer: TokenIssuer, email: str, password: str, client: str) -> TokenPair:
    """A new pair, in a new refresh family. WrongCredentials (as slow for an unknown email), AccountBanned,
    TooManyLoginAttempts (before any hash is spent). Failed tries are charged to the account from `client`,
    the caller's address: a guesser's lockout is not its owner's."""
    async with pool.acquire() as conn, conn.transaction():
        charged = charge_login_attempt(await db.login_attempts(conn, email, client), datetime.now(UTC))
        if isinstance(charged, timedelta):
            raise TooManyLoginAttempts(charged)
        await db.save_login_attempts(conn, email, client, charged)
    user = await db.user_with_password(pool, email)
    if user is None:
        await spend_a_check(password)
        raise WrongCredentials()
    if not await password_matches(user["password_hash"], password):
        raise WrongCredentials()
    await db.clear_login_attempts(pool, email, client)
    if needs_rehash(user["password_hash"]):
        await db.set_password_hash(pool, user["id"], await hash_password(password))
    async with pool.acquire() as conn, conn.transaction():
        # FOR SHARE: a ban committing now waits for us and then revokes the token we issue, or we see it.
        current = await db.user_by_id(conn, user["id"], lock="FOR SHARE")
        assert current is not None  # users are never deleted
        if current["banned"]:
            raise AccountBanned()
        return await _issue_pair(conn, issuer, current, family_id=uuid.uuid4())


async def refresh(pool: asyncpg.Pool, issuer: TokenIssuer, refresh_token: str) -> TokenPair:
    """Spend the refresh token for a new pair of its family; a spent one replayed revokes the family."""
    token_hash = refresh_token_hash(refresh_token)
    refused: str | None = None
    async with pool.acquire() as conn, conn.transaction():
        owner = await db.owner_of_refresh_token(conn, token_hash)
        if owner is None:
            raise RefreshRefused("unknown refresh token")
        user = await db.user_by_id(conn, owner, lock="FOR SHARE")
        stored = await db.lock_refresh_token(conn, token_hash)
        assert user is not None and stored is not None  # users and refresh tokens are never deleted
        verdict = judge_refresh(
            StoredRefreshToken(stored["expires_at"], stored["spent_at"], stored["revoked_at"]), datetime.now(UTC)
        )
        if verdict is RefreshVerdict.REUSED:
            # Refused after commit, so the family's revocation is kept.
            await db.revoke_family(conn, stored["family_id"])
            refused = "refresh token already used: this login is revoked, sign in again"
        elif verdict is not RefreshVerdict.USABLE:
            refused = f"refresh token {verdict.value}"
        elif user["banned"]:
            refused = "this account is banned"
        else:
            await db.spend_refresh_token(conn, stored["id"])
            pair = await _issue_pair(conn, issuer, user, family_id=stored["family_id"])
    if refused is not None:
        raise RefreshRefused(refused)
    return pair


async def _issue_pair(conn: DbConnection, issuer: TokenIssuer, user: asyncpg.Record, family_id: uuid.UUID) -> TokenPair:
    refresh_token = new_refresh_token()
    expires_at = datetime.now(UTC) + issuer.refresh_lifetime
    await db.insert_refresh_token(conn, user["id"], family_id, refresh_token_hash(refresh_token), expires_at)
    return TokenPair(
        access_token=issuer.access_token(user_id=user["id"], email=user["email"], role=user["role"]),
        refresh_token=refresh_token,
        expires_in=issuer.expires_in,
    )


# ---- bans ----


async def ban_user(pool: asyncpg.Pool, user_id: int, reason: str, admin_id: int) -> None:
    """Ban the user and revoke every refresh token of theirs (UserBanned); banning again changes nothing."""
    async with pool.acquire() as conn, conn.transaction():
        user = await db.user_by_id(conn, user_id, lock="FOR UPDATE")
        if user is None:
            raise UserNotFound(user_id)
        decision = decide_ban(admin_id=admin_id, user_id=user_id, already_banned=user["banned"])
        if decision is BanDecision.SELF:
            raise SelfBan()
        if decision is BanDecision.BAN:
            await db.mark_banned(conn, user_id, reason, admin_id)
            await db.revoke_all_of_user(conn, user_id)
            await add_event(conn, UserBanned(
                user_id=user_id, reason=reason, banned_by=admin_id, email=user["email"], name=user["name"],
            ))
