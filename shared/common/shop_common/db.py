"""The connection pool and migrations: numbered .sql files applied once, at start, under an advisory lock."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import asyncpg
from shop_events import SCHEMA, DbConnection

# One lock for every migrating replica of any service (each service has its own database anyway).
MIGRATION_LOCK = 0x5140_0001


# A pooled connection idle this long is closed (asyncpg's default: 300 s), and opened again on the next need.
# Connection slots are the server's to share (PostgreSQL's default is 100): a process that grew its pool for a
# burst gives them back half a minute later instead of five. make test keeps several suites' stacks up at once
# on one server, and with five minutes' hold a stack starting late found none left (TooManyConnectionsError).
IDLE_CONNECTION_SECONDS = 30.0


async def create_pool(database_url: str, size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        database_url, min_size=1, max_size=size, reset=keep_session,
        max_inactive_connection_lifetime=IDLE_CONNECTION_SECONDS,
    )


async def keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset at each release: nothing more than what asyncpg does first in any case (a transaction
    left open rolled back, listeners dropped). Its default reset also sends `SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL` at every release, a round trip for each use of the pool (two for every
    order placed). The services leave no session state on a pooled connection: no SET (only SET LOCAL), no
    cursor outside a transaction, and the migration's advisory lock and the relay's LISTEN undone by the code
    that took them (a LISTEN left behind would only bring notifications nobody listens to)."""


async def migrate(pool: asyncpg.Pool, directory: Path, shared: Mapping[str, str] | None = None) -> list[str]:
    """Apply the bus tables and any other shared schema (name: SQL) when their text changed, then the
    service's migrations not applied yet."""
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS shared_schema"
                " (name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for name, sql in {"shop_events": SCHEMA.read_text(), **(shared or {})}.items():
                await _apply_shared(conn, name, sql)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for path in sorted(directory.glob("*.sql")):
                if path.name in done:
                    continue
                sql = path.read_text()
                async with conn.transaction():
                    if _has_statements(sql):  # asyncpg fails on a query that is only comments
                        await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", path.name)
                applied_now.append(path.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
    return applied_now


async def _apply_shared(conn: DbConnection, name: str, sql: str) -> None:
    """Shared schema is written to be run again, but not at every start: even with nothing to create,
    CREATE INDEX IF NOT EXISTS takes a SHARE lock on its table, which waits for (and deadlocked with) the
    writes of a replica still running. So it runs only when its text is not the one last applied."""
    checksum = hashlib.sha256(sql.encode()).hexdigest()
    if await conn.fetchval("SELECT checksum FROM shared_schema WHERE name = $1", name) == checksum:
        return
    async with conn.transaction():
        await conn.execute(sql)
        await conn.execute(
            "INSERT INTO shared_schema (name, checksum) VALUES ($1, $2)"
            " ON CONFLICT (name) DO UPDATE SET checksum = $2, applied_at = now()",
            name, checksum,
        )


def _has_statements(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


async def fetch_one(conn: DbConnection | asyncpg.Pool, query: str, *args: object) -> asyncpg.Record:
    """The row of a statement that always returns one (an aggregate, an INSERT or upsert ... RETURNING)."""
    row = await conn.fetchrow(query, *args)
    if row is None:
        raise LookupError(f"no row from a statement that always returns one: {query[:80]}")
    return row
