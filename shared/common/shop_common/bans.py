"""Who is banned, held in memory by every process that checks bans, so that an authenticated call asks no database.

A process that serves the API loads the banned ids at start and LISTENs on BANNED_CHANNEL, which a trigger on
`banned_users` notifies at the commit of every ban; the process whose consumer handles the UserBanned adds the id
itself at once. So a ban takes effect in the handling process with its transaction, and in the others (replicas)
a notification later, milliseconds. While the listening connection is down (PostgreSQL restarting, the connection
cut), `banned()` answers None and the caller asks the table, as every call did before; once the connection is
back, LISTEN is issued before the ids are read again, so a ban committed in between is in the one or the other.
A connection cut without a word (a network partition) is found by a check every CHECK_SECONDS. A ban is never
lifted, so the set only grows: one int a banned user.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from shop_events.catalogue import UserBanned
from shop_events.db_types import DbConnection

log = logging.getLogger("shop_common.bans")

BANNED_CHANNEL = "shop_banned_users"
CHECK_SECONDS = 1.0
LISTENER_NAME = "shop ban list"  # application_name of the listening connection (pg_stat_activity)

# Services that take UserBanned keep the banned ids here; every insert notifies the processes listening.
BANNED_USERS_SQL = f"""
CREATE TABLE IF NOT EXISTS banned_users (
    user_id   bigint PRIMARY KEY,
    reason    text NOT NULL,
    banned_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION banned_users_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{BANNED_CHANNEL}', NEW.user_id::text);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER banned_users_notify AFTER INSERT ON banned_users
    FOR EACH ROW EXECUTE FUNCTION banned_users_notify();
"""


def ban_tables(checks_bans: bool) -> dict[str, str] | None:
    """The shared table a service that checks bans migrates beside its own (shop_common.db.migrate)."""
    return {"banned_users": BANNED_USERS_SQL} if checks_bans else None


class BannedUsers:
    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._current = False  # the set holds every committed ban and is kept up to date

    def add(self, user_id: int) -> None:
        self._ids.add(user_id)

    def banned(self, user_id: int) -> bool | None:
        """Whether the user is banned; None when the set may be behind (ask the table)."""
        if user_id in self._ids:
            return True
        return False if self._current else None

    async def keep_current(self, database_url: str) -> None:
        """Until cancelled: listen and read every ban; when the connection drops, say so and connect again."""
        while True:
            try:
                await self._listen(database_url)
                log.warning("ban list connection lost; asking the table until it is back")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                log.warning("ban list connection failed; asking the table until it is back", extra={"error": repr(exc)})
            await asyncio.sleep(CHECK_SECONDS)

    async def _listen(self, database_url: str) -> None:
        """Returns (or raises) once the listening connection is lost, and the set is no longer current."""
        conn = await asyncpg.connect(database_url, server_settings={"application_name": LISTENER_NAME})
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        try:
            await conn.add_listener(BANNED_CHANNEL, self._notified)  # before the read: a ban in between is in one
            self._ids.update(row["user_id"] for row in await conn.fetch("SELECT user_id FROM banned_users"))
            self._current = True
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), CHECK_SECONDS)
                except TimeoutError:  # quiet for a while: is the connection still there (a cut says nothing)?
                    await asyncio.wait_for(conn.fetchval("SELECT 1"), CHECK_SECONDS)
        finally:
            self._current = False
            conn.terminate()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object, /) -> None:
        self._ids.add(int(str(payload)))


async def record_ban(conn: DbConnection, ban: UserBanned, bans: BannedUsers) -> None:
    """What a service that refuses banned users' unexpired tokens does with UserBanned (its handler calls this).
    The id goes into this process's set before the commit: the ban is auth's fact already, and should this
    transaction roll back, the event comes again until it commits."""
    await conn.execute(
        "INSERT INTO banned_users (user_id, reason) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING",
        ban.user_id,
        ban.reason,
    )
    bans.add(ban.user_id)
