"""Faults injected where they really happen, for the tests: PostgreSQL triggers and broker-side changes.

Nothing here patches the code under test. A database fault is a trigger that raises while a switch row says
so; every hit is counted in a sequence, which a rollback does not undo, so a test can show the fault fired.
A broker fault is a change made with rabbitmqctl to the test's own vhost: a policy, a permission, a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
from shop_events.nodes import node_urls

from . import throwaway

SWITCH_SQL = """
CREATE TABLE IF NOT EXISTS fault_switch (name text PRIMARY KEY, until timestamptz NOT NULL);
CREATE SEQUENCE IF NOT EXISTS fault_hits;
-- TG_ARGV: the switch's name, then the SQLSTATE to raise (P0001 a plain error, 40001 serialization,
-- 40P01 deadlock, 57014 statement timeout, ...).
CREATE OR REPLACE FUNCTION fault_raise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM fault_switch WHERE name = TG_ARGV[0] AND until > clock_timestamp()) THEN
        PERFORM nextval('fault_hits');
        RAISE EXCEPTION 'fault injected: %', TG_ARGV[0] USING ERRCODE = TG_ARGV[1];
    END IF;
    RETURN NULL;
END $$;
"""

# where a fault goes: (table, timing clause) of the trigger
AT_COMMIT = "AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
BEFORE_INSERT = "BEFORE INSERT ON {table} FOR EACH STATEMENT"
BEFORE_UPDATE = "BEFORE UPDATE ON {table} FOR EACH STATEMENT"


class DatabaseFault:
    """A trigger on `table` that raises `sqlstate` while switched on (an AT_COMMIT one, at COMMIT)."""

    def __init__(self, pool: asyncpg.Pool, table: str, when: str, sqlstate: str = "P0001") -> None:
        self._pool = pool
        self.name = f"fault_{table}_{sqlstate}".lower()
        self._table, self._when, self._sqlstate = table, when, sqlstate

    async def install(self) -> DatabaseFault:
        constraint = "CONSTRAINT " if "DEFERRABLE" in self._when else ""
        async with self._pool.acquire() as conn:
            await conn.execute(SWITCH_SQL)
            await conn.execute(f"DROP TRIGGER IF EXISTS {self.name} ON {self._table}")
            await conn.execute(
                f"CREATE {constraint}TRIGGER {self.name} {self._when.format(table=self._table)}"
                f" EXECUTE FUNCTION fault_raise('{self.name}', '{self._sqlstate}')"
            )
        return self

    async def on_for(self, seconds: float) -> None:
        await self._pool.execute(
            "INSERT INTO fault_switch VALUES ($1, clock_timestamp() + make_interval(secs => $2))"
            " ON CONFLICT (name) DO UPDATE SET until = EXCLUDED.until",
            self.name, seconds,
        )

    async def off(self) -> None:
        await self._pool.execute("DELETE FROM fault_switch WHERE name = $1", self.name)

    async def hits(self) -> int:
        """How many times it raised (a sequence: rolled-back transactions still count)."""
        hits: int = await self._pool.fetchval("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM fault_hits")
        return hits


@contextlib.asynccontextmanager
async def connections_refused(database_url: str) -> AsyncIterator[None]:
    """The database refuses new connections and drops the ones it has, until the block ends."""
    name = unquote(urlsplit(database_url).path.lstrip("/"))
    await throwaway.admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await throwaway.admin_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        yield
    finally:
        await throwaway.admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


def vhost_of(amqp_url: str) -> str:
    return unquote(urlsplit(node_urls(amqp_url)[0]).path.lstrip("/")) or "/"


@contextlib.contextmanager
def broker_policy(amqp_url: str, pattern: str, definition: str, name: str = "fault") -> Iterator[None]:
    """A policy on the test's vhost (say max-length 0 with reject-publish: publishes to it are nacked)."""
    vhost = vhost_of(amqp_url)
    throwaway.rabbitmqctl("set_policy", "-p", vhost, "--apply-to", "queues", "--priority", "100", name, pattern, definition)
    try:
        yield
    finally:
        throwaway.rabbitmqctl("clear_policy", "-p", vhost, name)


@contextlib.contextmanager
def write_refused(amqp_url: str, resource: str) -> Iterator[None]:
    """The URL's user may not write to `resource` (an exchange name) until the block ends: a publish to it
    closes the channel with ACCESS_REFUSED."""
    vhost, user = vhost_of(amqp_url), urlsplit(node_urls(amqp_url)[0]).username or "guest"
    throwaway.rabbitmqctl("set_permissions", "-p", vhost, user, ".*", f"^(?!{resource}$).*", ".*")
    try:
        yield
    finally:
        throwaway.rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_queue(amqp_url: str, queue: str) -> None:
    throwaway.rabbitmqctl("delete_queue", "-p", vhost_of(amqp_url), queue)


def _rabbitmqctl_json(*args: str) -> list[dict[str, Any]]:
    """What rabbitmqctl lists, as JSON rows."""
    listed = subprocess.run(
        [shutil.which("rabbitmqctl") or "rabbitmqctl", "-q", *args, "--formatter", "json"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout
    rows: list[dict[str, Any]] = json.loads(listed or "[]")
    return rows


def list_queues(amqp_url: str, *columns: str) -> list[dict[str, Any]]:
    """The vhost's queues with these columns of `rabbitmqctl list_queues`."""
    return _rabbitmqctl_json("list_queues", "-p", vhost_of(amqp_url), *columns)


def close_connections(amqp_url: str, connection_name: str) -> int:
    """Close, broker-side, every connection of the vhost with that client-given name; returns how many.
    (Read in rabbitmqctl's text format: its JSON writes a pid close_connection does not take.)"""
    vhost = vhost_of(amqp_url)
    listed = subprocess.run(
        [shutil.which("rabbitmqctl") or "rabbitmqctl", "-q", "list_connections", "pid", "vhost", "client_properties"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.splitlines()
    closed = 0
    for line in listed:
        pid, _, rest = line.partition("\t")
        conn_vhost, _, properties = rest.partition("\t")
        if conn_vhost == vhost and f'"{connection_name}"' in properties:
            throwaway.rabbitmqctl("close_connection", pid, "fault injected")
            closed += 1
    return closed


def queue_depths(amqp_url: str) -> dict[str, int]:
    """Every queue of the vhost with its messages, ready and unacked together (what is still to settle).
    Streams (the parking queues and their replay logs) are left out: they keep every entry, read or not."""
    return {q["name"]: int(q["messages"]) for q in list_queues(amqp_url, "name", "messages", "type") if q["type"] != "stream"}


class TcpProxy:
    """A TCP proxy in front of a server, for faults on the wire: `pause()` holds every byte in both
    directions (a network that stops answering), `cut()` drops every connection (one that breaks)."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()

    def url(self, url: str) -> str:
        """The same URL through the proxy."""
        parts = urlsplit(url)
        netloc = f"{parts.netloc.rpartition('@')[0]}@127.0.0.1:{self.port}" if "@" in parts.netloc else f"127.0.0.1:{self.port}"
        return parts._replace(netloc=netloc).geturl()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(self._pump(client_reader, server_writer), self._pump(server_reader, client_writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
