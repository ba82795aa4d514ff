"""SQL of the notifications service (asyncpg). This service publishes nothing, so it writes no outbox rows.

Two kinds of writes: the copies of users and orders go through the consumer's connection, in the
batch's transaction with the inbox row; the mail records go through the pool, each committed on its own,
because a mail that left cannot be rolled back and its record must outlive any rollback.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from shop_events.db_types import DbConnection

from .domain import Notice

NOTICE_FIELDS = "id, type, subject, channel, status, created_at"
STAFF_FIELDS = f"{NOTICE_FIELDS}, recipient, body, sent_at"


@dataclass(frozen=True)
class Contact:
    user_id: int
    email: str
    name: str | None


# ---- the copies of users and orders (consumer's transaction) ----


async def save_user(conn: DbConnection, user_id: int, email: str, name: str | None) -> None:
    await conn.execute(
        "INSERT INTO users (user_id, email, name) VALUES ($1, $2, $3)"
        " ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = now()",
        user_id, email, name,
    )


async def save_order(conn: DbConnection, order_id: int, user_id: int, email: str) -> None:
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, email) VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING",
        order_id, user_id, email,
    )


async def find_user(conn: DbConnection, user_id: int) -> Contact | None:
    row = await conn.fetchrow("SELECT user_id, email, name FROM users WHERE user_id = $1", user_id)
    return Contact(row["user_id"], row["email"], row["name"]) if row else None


async def find_customer_of_order(conn: DbConnection, order_id: int, user_id: int) -> Contact | None:
    """The address the order was placed with, else the user's own; None while neither is known."""
    order_email = await conn.fetchval("SELECT email FROM orders WHERE order_id = $1 AND user_id = $2", order_id, user_id)
    user = await find_user(conn, user_id)
    if order_email is not None:
        return Contact(user_id, order_email, user.name if user else None)
    return user


# ---- the mail records (each its own transaction, on the pool) ----


@dataclass(frozen=True)
class MailRecord:
    id: int
    status: str


async def record_notice(pool: asyncpg.Pool, event_id: uuid.UUID, notice: Notice, message_id: str) -> MailRecord:
    """The row of this event's mail, made pending the first time; a redelivery finds the row as it was left."""
    row = await pool.fetchrow(
        "WITH made AS ("
        "  INSERT INTO notifications (event_id, user_id, audience, type, subject, body, recipient, message_id)"
        "  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        "  ON CONFLICT (event_id, type, recipient) DO NOTHING RETURNING id, status)"
        " SELECT id, status FROM made"
        " UNION ALL SELECT id, status FROM notifications WHERE event_id = $1 AND type = $4 AND recipient = $7",
        event_id, notice.user_id, notice.audience.value, notice.type.value,
        notice.subject, notice.body, notice.recipient, message_id,
    )
    if row is None:  # another consumer inserted it after this statement's snapshot was taken
        row = await pool.fetchrow(
            "SELECT id, status FROM notifications WHERE event_id = $1 AND type = $2 AND recipient = $3",
            event_id, notice.type.value, notice.recipient,
        )
    assert row is not None  # the row that conflicted is there (notifications are never deleted)
    return MailRecord(row["id"], row["status"])


async def mark_sent(pool: asyncpg.Pool, notice_id: int) -> None:
    await pool.execute(
        "UPDATE notifications SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL"
        " WHERE id = $1",
        notice_id,
    )


async def note_failure(pool: asyncpg.Pool, notice_id: int, error: str) -> None:
    await pool.execute(
        "UPDATE notifications SET attempts = attempts + 1, last_error = $2 WHERE id = $1", notice_id, error[:1000]
    )


# ---- reading ----


async def notices_of_user(pool: asyncpg.Pool, user_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT {NOTICE_FIELDS} FROM notifications WHERE audience = 'customer' AND user_id = $1"
        " ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
        user_id, limit, offset,
    )


async def staff_alerts(pool: asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT {STAFF_FIELDS} FROM notifications WHERE audience = 'staff'"
        " ORDER BY created_at DESC, id DESC LIMIT $1 OFFSET $2",
        limit, offset,
    )
