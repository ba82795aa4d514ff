"""Where `make test` gets its RabbitMQ and PostgreSQL: the servers at the configured URLs (installed from
Debian's packages by deploy/local/lib.sh when missing), or throwaway containers started with testcontainers
when a Docker engine answers and those servers don't. `SHOP_TEST_INFRA=auto|local|containers` forces a path.

    python -m shop_common.infrastructure choose       prints `local` or `containers` (the reason on stderr);
                                                      exits 2 with the reason when neither can be had
    python -m shop_common.infrastructure run CMD...   starts the containers, runs CMD with their URLs, stops them
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from shop_events.settings import amqp_url_from_env

MODES = ("auto", "local", "containers")
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The version lines the project runs: docker-compose.yml's broker, this machine's PostgreSQL 15.
RABBITMQ_IMAGE = "rabbitmq:3.13.7-management"
POSTGRES_IMAGE = "postgres:15.10"


@dataclass(frozen=True)
class Choice:
    path: Literal["local", "containers", "error"]
    reason: str


def choose(mode: str, servers_answer: bool, engine_problem: str | None, elsewhere: bool = False) -> Choice:
    """The test servers' path. `servers_answer`: RabbitMQ and PostgreSQL both answer at the configured URLs;
    `engine_problem`: why no Docker engine answers (None when one does); `elsewhere`: a URL names another
    machine (then it is used as configured, never replaced by a container)."""
    if mode not in MODES:
        return Choice("error", f"SHOP_TEST_INFRA must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "local":
        return Choice("local", "SHOP_TEST_INFRA=local")
    if mode == "containers":
        if engine_problem is None:
            return Choice("containers", "SHOP_TEST_INFRA=containers")
        return Choice("error", f"SHOP_TEST_INFRA=containers, but no Docker engine answers: {engine_problem}")
    if servers_answer:
        return Choice("local", "RabbitMQ and PostgreSQL answer at the configured URLs")
    if elsewhere:
        return Choice("local", "AMQP_URL or TEST_POSTGRES_URL names another machine: used as configured")
    if engine_problem is None:
        return Choice("containers", "no RabbitMQ or PostgreSQL answers at the configured URLs, and a Docker engine does")
    return Choice("local", f"no RabbitMQ or PostgreSQL answers, nor a Docker engine ({engine_problem}): installing them")


def postgres_url_from_env() -> str:
    return os.environ.get("SHOP_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL


def on_this_machine(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1", None)


def answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def engine_problem() -> str | None:
    """None when a Docker engine answers a ping and the docker command is here to reach it, else what is wrong."""
    if shutil.which("docker") is None:
        return "no docker command on PATH (the suite's rabbitmqctl runs through `docker exec`)"
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - whatever the failure, it is the reason no engine answers
        return f"{type(exc).__name__}: {exc}"
    return None


def decide() -> Choice:
    mode = os.environ.get("SHOP_TEST_INFRA", "auto")
    amqp_url, postgres_url = amqp_url_from_env(), postgres_url_from_env()
    servers = answers(amqp_url, 5672) and answers(postgres_url, 5432)
    elsewhere = not (on_this_machine(amqp_url) and on_this_machine(postgres_url))
    needs_engine = mode == "containers" or (mode == "auto" and not servers and not elsewhere)
    return choose(mode, servers, engine_problem() if needs_engine else None, elsewhere)


@contextmanager
def containers() -> Iterator[dict[str, str]]:
    """RabbitMQ and PostgreSQL in containers for the block; yields the environment that points the suite at them.

    Ports are published on 127.0.0.1 only, since PostgreSQL trusts every connection as local mode's does (each
    service logs in as its own password-less role). The suite's `rabbitmqctl` (throwaway vhosts, broker faults,
    users) runs in the broker's container, through a wrapper put first on PATH."""
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.rabbitmq import RabbitMqContainer

    rabbitmq = RabbitMqContainer(RABBITMQ_IMAGE)
    postgres = PostgresContainer(POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres", driver=None)
    postgres.with_env("POSTGRES_HOST_AUTH_METHOD", "trust")
    for container, port in ((rabbitmq, 5672), (postgres, 5432)):
        container.ports[str(port)] = ("127.0.0.1", None)  # type: ignore[assignment]  # docker-py takes (address, port)
    with rabbitmq, postgres, tempfile.TemporaryDirectory(prefix="shop-rabbitmqctl-") as bin_dir:
        broker = rabbitmq.get_wrapped_container()
        wrapper = Path(bin_dir) / "rabbitmqctl"
        wrapper.write_text(f'#!/bin/sh\nexec docker exec -i {broker.id} rabbitmqctl "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        host = "127.0.0.1"
        amqp_port = rabbitmq.get_exposed_port(5672)
        pg_port = postgres.get_exposed_port(5432)
        postgres_url = f"postgresql://postgres@{host}:{pg_port}/postgres"
        yield {
            "AMQP_URL": f"amqp://guest:guest@{host}:{amqp_port}/",
            "SHOP_POSTGRES_URL": postgres_url,
            "TEST_POSTGRES_URL": postgres_url,
            # lib.sh makes per-service broker users on a broker on another port only when told its node.
            "RABBITMQ_NODENAME": f"rabbit@{broker.attrs['Config']['Hostname']}",
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "SHOP_TEST_INFRA": "local",  # what runs inside uses these servers as they are
        }


def main(argv: list[str]) -> int:
    if argv[:1] == ["choose"]:
        choice = decide()
        print(f"==> test servers: {choice.path} ({choice.reason})", file=sys.stderr)
        if choice.path == "error":
            return 2
        print(choice.path)
        return 0
    if argv[:1] == ["run"] and len(argv) > 1:
        print(f"==> starting {RABBITMQ_IMAGE} and {POSTGRES_IMAGE} with testcontainers", file=sys.stderr)
        with containers() as env:
            print(f"==> RabbitMQ at {env['AMQP_URL']}, PostgreSQL at {env['SHOP_POSTGRES_URL']}", file=sys.stderr)
            return subprocess.run(argv[1:], env={**os.environ, **env}).returncode
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
