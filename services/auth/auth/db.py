"""SQL of the auth service (asyncpg), and nothing else: its use cases (application.py) add the events in the
same transaction.

Lock order, to never deadlock: a user's row first, then their refresh tokens (ban, login and refresh alike).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
from shop_common.db import fetch_one
from shop_events.db_types import DbConnection

from .domain import ADMIN, CUSTOMER, LoginAttempts

USER_COLUMNS = "id, email, name, role, banned, created_at"


async def insert_customer(conn: DbConnection, email: str, name: str | None, password_hash: str) -> asyncpg.Record | None:
    """The new user, or None when the email is taken."""
    return await conn.fetchrow(
        "INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4)"
        f" ON CONFLICT (email) DO NOTHING RETURNING {USER_COLUMNS}",
        email, name, password_hash, CUSTOMER,
    )


async def upsert_admin(conn: DbConnection, email: str, name: str, password_hash: str) -> asyncpg.Record:
    """Create the admin, or make the existing account an admin with this password (one statement: replica-safe)."""
    return await fetch_one(
        conn,
        "INSERT INTO users (email, name, password_hash, role) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (email) DO UPDATE SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role"
        f" RETURNING {USER_COLUMNS}",
        email, name, password_hash, ADMIN,
    )


async def user_with_password(conn: DbConnection | asyncpg.Pool, email: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1", email)


async def user_by_id(conn: DbConnection | asyncpg.Pool, user_id: int, *, lock: str = "") -> asyncpg.Record | None:
    """lock: "" (none), "FOR SHARE" (keep a ban out until commit) or "FOR UPDATE" (to ban)."""
    assert lock in ("", "FOR SHARE", "FOR UPDATE")
    return await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE id = $1 {lock}", user_id)


async def list_users(conn: DbConnection | asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2", limit, offset)


async def set_password_hash(conn: DbConnection | asyncpg.Pool, user_id: int, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1", user_id, password_hash)


async def mark_banned(conn: DbConnection, user_id: int, reason: str, banned_by: int) -> None:
    await conn.execute(
        "UPDATE users SET banned = true, banned_at = now(), banned_reason = $2, banned_by = $3 WHERE id = $1",
        user_id, reason, banned_by,
    )


async def insert_refresh_token(
    conn: DbConnection, user_id: int, family_id: uuid.UUID, token_hash: str, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) VALUES ($1, $2, $3, $4)",
        user_id, family_id, token_hash, expires_at,
    )


async def owner_of_refresh_token(conn: DbConnection, token_hash: str) -> int | None:
    owner: int | None = await conn.fetchval("SELECT user_id FROM refresh_tokens WHERE token_hash = $1", token_hash)
    return owner


async def lock_refresh_token(conn: DbConnection, token_hash: str) -> asyncpg.Record | None:
    """The token row, locked: two refreshes with one token take turns, and the second sees it spent."""
    return await conn.fetchrow(
        "SELECT id, user_id, family_id, expires_at, spent_at, revoked_at FROM refresh_tokens"
        " WHERE token_hash = $1 FOR UPDATE",
        token_hash,
    )


async def spend_refresh_token(conn: DbConnection, token_id: int) -> None:
    await conn.execute("UPDATE refresh_tokens SET spent_at = now() WHERE id = $1", token_id)


async def revoke_family(conn: DbConnection, family_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL", family_id
    )


async def revoke_all_of_user(conn: DbConnection, user_id: int) -> int:
    status = await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return int(status.split()[-1])


async def login_attempts(conn: DbConnection, email: str, client: str) -> LoginAttempts:
    """The tries charged to the account from this client address (none yet: a row of 0), its row locked until
    commit so that concurrent tries are charged one after another. One statement: the no-op update is what
    takes the lock."""
    row = await conn.fetchrow(
        "INSERT INTO login_attempts_by_client (email, client, failures, last_at) VALUES ($1, $2, 0, now())"
        " ON CONFLICT (email, client) DO UPDATE SET email = EXCLUDED.email RETURNING failures, last_at, locked_until",
        email, client,
    )
    assert row is not None  # INSERT ... RETURNING always returns its row
    return LoginAttempts(row["failures"], row["last_at"], row["locked_until"])


async def save_login_attempts(conn: DbConnection, email: str, client: str, attempts: LoginAttempts) -> None:
    await conn.execute(
        "UPDATE login_attempts_by_client SET failures = $3, last_at = $4, locked_until = $5"
        " WHERE email = $1 AND client = $2",
        email, client, attempts.failures, attempts.last_at, attempts.locked_until,
    )


async def clear_login_attempts(conn: DbConnection | asyncpg.Pool, email: str, client: str) -> None:
    await conn.execute("DELETE FROM login_attempts_by_client WHERE email = $1 AND client = $2", email, client)
