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


async def save_orders(conn: DbConnection, orders: list[tuple[int, int, str]]) -> None:
    """The copies of these orders (order id, user id, email), in one statement."""
    await conn.execute(
        "INSERT INTO orders (order_id, user_id, email)"
        " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[]) ON CONFLICT (order_id) DO NOTHING",
        [o[0] for o in orders], [o[1] for o in orders], [o[2] for o in orders],
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


async def record_notices(pool: asyncpg.Pool, mails: list[tuple[uuid.UUID, Notice, str]]) -> list[MailRecord]:
    """The rows of these mails (event id, notice, Message-ID), in their order, each made pending the first time,
    in one statement; a redelivery finds each row as it was left."""
    keys = [(event_id, notice.type.value, notice.recipient) for event_id, notice, _ in mails]
    rows = await pool.fetch(
        "WITH mail AS ("
        "  SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        "  $8::text[]) AS m (event_id, user_id, audience, type, subject, body, recipient, message_id)),"
        " made AS ("
        "  INSERT INTO notifications (event_id, user_id, audience, type, subject, body, recipient, message_id)"
        "  SELECT * FROM mail ON CONFLICT (event_id, type, recipient) DO NOTHING"
        "  RETURNING id, status, event_id, type, recipient)"
        " SELECT * FROM made"
        " UNION ALL SELECT n.id, n.status, n.event_id, n.type, n.recipient"
        " FROM notifications n JOIN mail USING (event_id, type, recipient)",
        [m[0] for m in mails], [n.user_id for _, n, _ in mails], [n.audience.value for _, n, _ in mails],
        [k[1] for k in keys], [n.subject for _, n, _ in mails], [n.body for _, n, _ in mails],
        [k[2] for k in keys], [m[2] for m in mails],
    )
    if len(_by_key(rows)) < len(set(keys)):  # another consumer inserted some after this statement's snapshot
        rows = await pool.fetch(
            "SELECT id, status, event_id, type, recipient FROM notifications"
            " WHERE (event_id, type, recipient) IN (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]))",
            [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
        )
    found = _by_key(rows)
    return [found[key] for key in keys]  # each row that conflicted is there (notifications are never deleted)


def _by_key(rows: list[asyncpg.Record]) -> dict[tuple[uuid.UUID, str, str], MailRecord]:
    return {(r["event_id"], r["type"], r["recipient"]): MailRecord(r["id"], r["status"]) for r in rows}


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
