"""The local runner's Python half: what is easier with the venv's libraries than in bash.

    stackctl.py createdb URL...                create each database that is missing
    stackctl.py dropdb URL...                  drop them and their roles (tests' teardown)
    stackctl.py own URL...                     give each database its own login role (shop_<database>)
    stackctl.py wait GATEWAY RUN_DIR NAME=PORT...  wait for each process's health, then each service's through the gateway
    stackctl.py health GATEWAY SVC...          one line per service: up or down
    stackctl.py outbox URL...                  unsent outbox rows per database
    stackctl.py queues AMQP_URL SVC...         each service's queues: ready, consumers, waiting to retry, parked
    stackctl.py history AMQP_URL URL...        the history stream's size and oldest event, each database's rebuild
    stackctl.py mail DIR [N]                   the last N mails the SMTP sink received

`stackctl.py COMMAND --help` tells more.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer
from shop_events.outbox import outbox_backlog

app = typer.Typer(help="The local runner's Python half (deploy/local/*.sh call it).", no_args_is_help=True, add_completion=False)
Urls = typer.Argument(None, help="PostgreSQL URLs, one per database")
Services = typer.Argument(None, help="service names")


def _split(url: str) -> tuple[str, str]:
    """(URL of the server's maintenance database, database name)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, "")), name


async def _createdb(urls: list[str]) -> None:
    for url in urls:
        admin, name = _split(url)
        conn = await asyncpg.connect(admin)
        try:
            if await conn.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
                continue
            await conn.execute(f'CREATE DATABASE "{name}"')
            print(f"==> created database {name}")
        finally:
            await conn.close()


async def _dropdb(urls: list[str]) -> None:
    for url in urls:
        admin, name = _split(url)
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{role_of(name)}"')
        finally:
            await conn.close()


async def _own(urls: list[str]) -> None:
    """Least privilege: each service logs in as its own role, which owns its database (and what is in it),
    and only that role (and the superuser) may connect to it. Safe to run again."""
    for url in urls:
        admin, name = _split(url)
        role = role_of(name)
        conn = await asyncpg.connect(admin)
        try:
            if not await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role):
                await conn.execute(f'CREATE ROLE "{role}" LOGIN')
                print(f"==> created database role {role}")
            await conn.execute(f'ALTER DATABASE "{name}" OWNER TO "{role}"')
            await conn.execute(f'REVOKE CONNECT, TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
            await conn.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{role}"')
        finally:
            await conn.close()
        # Tables made before the role existed (a stack from before roles) are handed over too.
        conn = await asyncpg.connect(url)
        try:
            for kind, relation in await conn.fetch(
                "SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'"
                " ELSE 'TABLE' END, format('%I.%I', n.nspname, c.relname) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
                " AND pg_get_userbyid(c.relowner) <> $1"
                " AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))",
                role,
            ):
                await conn.execute(f'ALTER {kind} {relation} OWNER TO "{role}"')
        finally:
            await conn.close()


def role_of(database: str) -> str:
    return f"shop_{database}"


def _healthy(gateway: str, service: str) -> bool:
    try:
        with urllib.request.urlopen(f"{gateway}/api/{service}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _alive(run_dir: Path, name: str) -> bool:
    pid_file = run_dir / "pids" / f"{name}.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
        return not Path(f"/proc/{pid}/status").read_text().count("State:\tZ")
    except (OSError, ValueError, IndexError):
        return False


def wait(gateway: str, run_dir: str, processes: dict[str, int], timeout: float) -> None:
    """Every process answers its own health check (a replica that died while starting is not hidden by the
    one beside it, which the gateway would ask instead), then every service through the gateway. Progress
    every few seconds; fails at once when a process died, with the end of its log."""
    folder = Path(run_dir)
    started = time.monotonic()
    waiting = dict(processes)
    last_said = 0.0
    while waiting:
        waiting = {n: port for n, port in waiting.items() if not _healthy(f"http://127.0.0.1:{port}", _service_of(n))}
        if not waiting:
            break
        dead = [n for n in waiting if (folder / "pids" / f"{n}.pid").exists() and not _alive(folder, n)]
        if dead:
            for n in dead:
                log = folder / "logs" / f"{n}.log"
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                print(f"error: {n} stopped while starting; the end of {log}:", *tail, sep="\n  ", file=sys.stderr)
            print("the rest is still running: `make down` stops it", file=sys.stderr)
            raise SystemExit(1)
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            print(f"error: not healthy after {timeout:.0f}s: {', '.join(waiting)}; see {folder}/logs/ (`make down` stops the rest)", file=sys.stderr)
            raise SystemExit(1)
        if elapsed - last_said >= 2:
            print(f"    waiting for {', '.join(waiting)} ({elapsed:.0f}s)", flush=True)
            last_said = elapsed
        time.sleep(0.3)
    services = sorted({_service_of(n) for n in processes})
    while unreachable := [s for s in services if not _healthy(gateway, s)]:
        if time.monotonic() - started > timeout:
            print(f"error: every process answers, but not through the gateway {gateway}: {', '.join(unreachable)}; see {folder}/logs/gateway.log", file=sys.stderr)
            raise SystemExit(1)
        time.sleep(0.3)
    print(f"==> every process answers, and every service through {gateway} ({time.monotonic() - started:.1f}s)")


def _service_of(process: str) -> str:
    """orders-2 -> orders (deploy/local/lib.sh's replica_name)."""
    service, _, replica = process.rpartition("-")
    return service if service and replica.isdigit() else process


def health(gateway: str, services: list[str]) -> None:
    for s in services:
        print(f"  {s:<14} {'up' if _healthy(gateway, s) else 'DOWN'}")


async def _outbox(urls: list[str]) -> None:
    for url in urls:
        name = urlsplit(url).path.lstrip("/")
        try:
            conn = await asyncpg.connect(url, timeout=3)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"  {name:<32} unreachable ({exc.__class__.__name__})")
            continue
        try:
            backlog = await outbox_backlog(conn)
            age = f", oldest {backlog.age_seconds():.1f}s" if backlog.oldest is not None else ""
            print(f"  {name:<32} {backlog.depth} unsent{age}")
        except asyncpg.UndefinedTableError:
            print(f"  {name:<32} no outbox yet")
        finally:
            await conn.close()


async def _queue_state(connection, name: str) -> tuple[int, int] | None:  # noqa: ANN001
    """(messages, consumers) by a passive declare, exact at once (rabbitmqctl's consumer count lags);
    None when the queue is not declared."""
    from aio_pika.exceptions import ChannelClosed

    channel = await connection.channel()
    try:
        result = (await channel.declare_queue(name, passive=True)).declaration_result
        return result.message_count, result.consumer_count
    except ChannelClosed:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


async def _queues(amqp_url: str, services: list[str]) -> None:
    from shop_events import nodes, parking

    connection = await nodes.connect(amqp_url, client_properties={"connection_name": "make status"})
    parked_lines, retrying, parked_total = [], 0, 0
    try:
        for service in services:
            for lane in ("background", "immediate"):
                work = f"{service}.{lane}"
                state = await _queue_state(connection, work)
                if state is None:
                    continue
                print(f"  {work:<34} {state[0]:>6} messages {state[1]:>3} consumers")
                n = 1
                while (waiting := await _queue_state(connection, f"{work}.retry.{n}")) is not None:
                    retrying += waiting[0]
                    n += 1
                if await _queue_state(connection, f"{work}.dlq") is None:
                    continue
                # Counted from the parking stream and its replay log, reading no parked message (its
                # depth would count the replayed ones too).
                parked = await parking.count_parked(connection, f"{work}.dlq")
                if parked:
                    parked_total += parked
                    parked_lines.append(f"  {work + '.dlq':<34} {parked:>6} parked")
    finally:
        await connection.close()
    print(f"  waiting to retry: {retrying}")
    print("parked (see and replay them: the operations page at /ops/, or .venv/bin/shop-events parked list / replay):")
    print(*parked_lines, f"  parked in all: {parked_total}", sep="\n")


def mail(folder: str, count: int) -> None:
    files = sorted(Path(folder).glob("*.eml"))[-count:]
    if not files:
        print(f"no mail in {folder}")
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        print(f"{path.name}  to {message['X-Envelope-To'] or message['To']}  {message['Subject']}")


@app.command()
def createdb(urls: list[str] = Urls) -> None:
    """Create each database that is missing."""
    asyncio.run(_createdb(urls or []))


@app.command()
def dropdb(urls: list[str] = Urls) -> None:
    """Drop the databases and their roles (tests' teardown)."""
    asyncio.run(_dropdb(urls or []))


@app.command()
def own(urls: list[str] = Urls) -> None:
    """Give each database its own login role (shop_<database>)."""
    asyncio.run(_own(urls or []))


@app.command("wait")
def wait_command(
    gateway: str, run_dir: str,
    processes: list[str] = typer.Argument(..., help="NAME=PORT of every service process, e.g. orders-2=8013"),
    timeout: float = typer.Option(120, envvar="SHOP_UP_TIMEOUT", help="seconds before giving up"),
) -> None:
    """Wait for every process's /api/<service>/health on its own port, then through the gateway."""
    wait(gateway, run_dir, {name: int(port) for name, _, port in (p.partition("=") for p in processes)}, timeout)


@app.command("health")
def health_command(gateway: str, services: list[str] = Services) -> None:
    """One line per service: up or down."""
    health(gateway, services or [])


@app.command()
def outbox(urls: list[str] = Urls) -> None:
    """Unsent outbox rows per database."""
    asyncio.run(_outbox(urls or []))


@app.command()
def queues(amqp_url: str, services: list[str] = Services) -> None:
    """Each service's queues: ready, consumers, waiting to retry, parked."""
    try:
        asyncio.run(_queues(amqp_url, services or []))
    except OSError as exc:
        print(f"  the broker does not answer ({exc})")


@app.command("history")
def history_command(amqp_url: str, urls: list[str] = Urls) -> None:
    """The history stream's size, offsets and oldest event; per database, its last rebuild or backfill."""
    try:
        asyncio.run(_history(amqp_url, urls or []))
    except OSError as exc:
        print(f"  the broker does not answer ({exc})")


async def _history(amqp_url: str, urls: list[str]) -> None:
    import aio_pika
    from shop_events import history

    connection = await aio_pika.connect(amqp_url, client_properties={"connection_name": "make status"})
    try:
        stream = await history.stream_state(connection)
    finally:
        await connection.close()
    if stream.messages is None:
        print("  shop.history is not declared")
    else:
        print(f"  shop.history  {stream.messages} messages, offsets {stream.first_offset}..{stream.last_offset},"
              f" oldest event {stream.oldest_at or '-'}")
    for url in urls:
        name = urlsplit(url).path.lstrip("/")
        conn = await asyncpg.connect(url, timeout=5)
        try:
            for row in await conn.fetch("SELECT * FROM history_position ORDER BY service"):
                state = f"finished {row['finished_at']}" if row["finished_at"] else "RUNNING (or killed: run it again)"
                of = "?" if row["end_offset"] is None else row["end_offset"] + 1  # offsets start at 0
                print(f"  {name:<32} {row['service']}: offset {row['next_offset']} of {of},"
                      f" {row['replayed']} replayed, {state}")
        except asyncpg.UndefinedTableError:
            pass
        finally:
            await conn.close()


@app.command("mail")
def mail_command(folder: str, count: int = typer.Argument(20, help="how many, the last ones")) -> None:
    """The last mails the SMTP sink received."""
    mail(folder, count)


if __name__ == "__main__":
    app()
