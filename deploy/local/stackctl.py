"""The local runner's Python half: what is easier with the venv's libraries than in bash.

    stackctl.py createdb URL...                create each database that is missing
    stackctl.py dropdb URL...                  drop them (tests' teardown)
    stackctl.py wait GATEWAY RUN_DIR SVC...    wait for /api/<svc>/health through the gateway, with progress
    stackctl.py health GATEWAY SVC...          one line per service: up or down
    stackctl.py outbox URL...                  unsent outbox rows per database
    stackctl.py mail DIR [N]                   the last N mails the SMTP sink received
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
        finally:
            await conn.close()


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


def wait(gateway: str, run_dir: str, services: list[str], timeout: float) -> None:
    """Progress every few seconds; fails at once when a service process died, naming its log."""
    folder = Path(run_dir)
    started = time.monotonic()
    waiting = list(services)
    last_said = 0.0
    while waiting:
        waiting = [s for s in waiting if not _healthy(gateway, s)]
        if not waiting:
            break
        dead = [s for s in waiting if (folder / "pids" / f"{s}.pid").exists() and not _alive(folder, s)]
        if dead:
            for s in dead:
                log = folder / "logs" / f"{s}.log"
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                print(f"error: {s} stopped while starting; the end of {log}:", *tail, sep="\n  ", file=sys.stderr)
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
    print(f"==> every service answers through {gateway} ({time.monotonic() - started:.1f}s)")


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
            row = await conn.fetchrow(
                "SELECT count(*) AS unsent, extract(epoch FROM now() - min(created_at)) AS age"
                " FROM outbox WHERE sent_at IS NULL"
            )
            age = f", oldest {row['age']:.1f}s" if row["age"] is not None else ""
            print(f"  {name:<32} {row['unsent']} unsent{age}")
        except asyncpg.UndefinedTableError:
            print(f"  {name:<32} no outbox yet")
        finally:
            await conn.close()


def mail(folder: str, count: int) -> None:
    files = sorted(Path(folder).glob("*.eml"))[-count:]
    if not files:
        print(f"no mail in {folder}")
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        print(f"{path.name}  to {message['X-Envelope-To'] or message['To']}  {message['Subject']}")


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    command, args = argv[0], argv[1:]
    if command == "createdb":
        asyncio.run(_createdb(args))
    elif command == "dropdb":
        asyncio.run(_dropdb(args))
    elif command == "wait":
        wait(args[0], args[1], args[2:], float(os.environ.get("SHOP_UP_TIMEOUT", "120")))
    elif command == "health":
        health(args[0], args[1:])
    elif command == "outbox":
        asyncio.run(_outbox(args))
    elif command == "mail":
        mail(args[0], int(args[1]) if len(args) > 1 else 20)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
