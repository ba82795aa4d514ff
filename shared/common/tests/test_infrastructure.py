"""Where `make test` gets its broker and database (shop_common/infrastructure.py): the choice of path, then the
container path itself, which really starts RabbitMQ and PostgreSQL wherever a Docker engine answers."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from shop_common import infrastructure, throwaway
from shop_common.infrastructure import Choice, choose

ROOT = Path(__file__).resolve().parents[3]
NO_ENGINE = "DockerException: Error while fetching server API version"


@pytest.mark.parametrize(
    ("mode", "servers_answer", "engine_problem", "elsewhere", "path", "reason"),
    [
        # auto: the servers this machine runs first, then containers, then installing the servers
        ("auto", True, None, False, "local", "answer at the configured URLs"),
        ("auto", True, NO_ENGINE, False, "local", "answer at the configured URLs"),
        ("auto", False, None, False, "containers", "a Docker engine does"),
        ("auto", False, NO_ENGINE, False, "local", f"nor a Docker engine ({NO_ENGINE}): installing them"),
        # a server configured on another machine is never replaced by a container
        ("auto", False, None, True, "local", "names another machine: used as configured"),
        ("auto", True, None, True, "local", "answer at the configured URLs"),
        # forced
        ("local", False, None, False, "local", "SHOP_TEST_INFRA=local"),
        ("local", True, NO_ENGINE, False, "local", "SHOP_TEST_INFRA=local"),
        ("containers", True, None, False, "containers", "SHOP_TEST_INFRA=containers"),
        ("containers", False, None, True, "containers", "SHOP_TEST_INFRA=containers"),
        ("containers", True, NO_ENGINE, False, "error", f"no Docker engine answers: {NO_ENGINE}"),
        ("docker", True, None, False, "error", "must be one of auto, local, containers, not 'docker'"),
    ],
)
def test_the_path_follows_the_servers_the_engine_and_the_override(mode, servers_answer, engine_problem, elsewhere, path, reason):
    choice = choose(mode, servers_answer, engine_problem, elsewhere)
    assert choice.path == path
    assert reason in choice.reason


def test_a_server_answers_only_where_something_listens():
    assert infrastructure.answers(throwaway.AMQP_URL, 5672)
    assert infrastructure.answers(throwaway.POSTGRES_URL, 5432)
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        assert not infrastructure.answers(f"amqp://guest:guest@127.0.0.1:{probe.getsockname()[1]}/", 5672)


def run_choose(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shop_common.infrastructure", "choose"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_test_sh_keeps_the_servers_that_answer():
    done = run_choose(SHOP_TEST_INFRA="auto")
    assert (done.returncode, done.stdout) == (0, "local\n")
    assert "answer at the configured URLs" in done.stderr


def test_a_broker_configured_on_another_machine_is_used_as_configured():
    done = run_choose(SHOP_TEST_INFRA="auto", AMQP_URL="amqp://guest:guest@rabbitmq.invalid:5672/")
    assert (done.returncode, done.stdout) == (0, "local\n")
    assert "names another machine" in done.stderr


def test_forcing_containers_says_why_when_no_engine_answers():
    problem = infrastructure.engine_problem()
    done = run_choose(SHOP_TEST_INFRA="containers")
    if problem is None:
        assert (done.returncode, done.stdout) == (0, "containers\n")
    else:
        assert done.returncode == 2 and done.stdout == ""
        assert f"no Docker engine answers: {problem}" in done.stderr


@pytest.mark.slow
def test_the_container_path_runs_the_suite_on_rabbitmq_and_postgresql_in_containers():
    problem = infrastructure.engine_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine answers: {problem}")
    with infrastructure.containers() as env:
        child_env = {**os.environ, **env}
        assert Choice("local", "SHOP_TEST_INFRA=local") == choose(env["SHOP_TEST_INFRA"], True, None)
        versions = subprocess.run(
            [sys.executable, "-c", VERSIONS], env=child_env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert versions.returncode == 0, versions.stderr
        rabbitmq, postgres = versions.stdout.split()
        assert rabbitmq.startswith("3.13.") and postgres.startswith("15.")
        # A real module of the suite, policies set with rabbitmqctl included, against the containers.
        suite = subprocess.run(
            [sys.executable, "-m", "pytest", "shared/events/tests/test_topology.py", "-q", "-p", "no:cacheprovider"],
            env=child_env, cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-3000:]
        assert "5 passed" in suite.stdout


# Run with the containers' environment: the versions the servers report through the suite's own helpers
# (a throwaway vhost made with the rabbitmqctl wrapper, a throwaway database).
VERSIONS = """
import asyncio
import aio_pika, asyncpg
from shop_common import throwaway

async def main():
    vhost, database = throwaway.new_name(), throwaway.new_name()
    connection = await aio_pika.connect(throwaway.create_vhost(vhost))
    rabbitmq = connection.transport.connection.server_properties["version"]
    await connection.close()
    throwaway.delete_vhost(vhost)
    conn = await asyncpg.connect(await throwaway.create_database(database))
    postgres = await conn.fetchval("SHOW server_version")
    await conn.close()
    await throwaway.drop_database(database)
    print(rabbitmq, postgres.split()[0])

asyncio.run(main())
"""
