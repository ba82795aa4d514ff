"""Throwaway vhosts and databases on the real servers, for tests and the benchmark.

Every name starts with `shoptest_<run id>`, so a run never sees another run's data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from itertools import count
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from shop_events.nodes import node_urls
from shop_events.settings import amqp_url_from_env

RUN_ID = uuid.uuid4().hex[:8]
AMQP_URL = amqp_url_from_env()
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_numbers = count(1)


def new_name() -> str:
    return f"shoptest_{RUN_ID}_{next(_numbers)}"


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError("rabbitmqctl is needed to make a throwaway vhost; `make test` installs RabbitMQ")
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=60)


def with_vhost(url: str, vhost: str) -> str:
    """The same broker (each node, when AMQP_URL lists a cluster's), another vhost."""
    return ",".join(
        urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, ""))
        for parts in map(urlsplit, node_urls(url))
    )


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


def create_vhost(vhost: str) -> str:
    """Creates the vhost, lets the URL's user in, and returns the URL that points at it."""
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, urlsplit(node_urls(AMQP_URL)[0]).username or "guest", ".*", ".*", ".*")
    return with_vhost(AMQP_URL, vhost)


def delete_vhost(vhost: str) -> None:
    rabbitmqctl("delete_vhost", vhost)


async def admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def create_database(name: str) -> str:
    await admin_sql(f'CREATE DATABASE "{name}"')
    return with_database(POSTGRES_URL, name)


async def drop_database(name: str) -> None:
    await admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    # The login role local mode made for a stack's database (deploy/local/stackctl.py own), if any.
    await admin_sql(f'DROP ROLE IF EXISTS "shop_{name}"')
