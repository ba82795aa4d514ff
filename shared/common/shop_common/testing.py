"""pytest plugin: throwaway vhosts and databases on the real RabbitMQ and PostgreSQL, keys, tokens,
and an in-process running service. Loaded for the whole suite by pytest.ini (`-p shop_common.testing`).

Every name made here starts with `shoptest_<run id>` so a run never sees another run's data, and a
crashed run's leftovers can be told apart and removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shop_events import Router
from shop_events.testkit import HandlerKit

from . import throwaway, tracing
from .bans import ban_tables
from .db import create_pool, migrate


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A fresh vhost for this test, deleted afterwards."""
    vhost = throwaway.new_name()
    try:
        url = throwaway.create_vhost(vhost)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        throwaway.delete_vhost(vhost)


@pytest.fixture
def make_database() -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases for this test; each is dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = throwaway.new_name()
        url = asyncio.run(throwaway.create_database(name))
        made.append(name)
        return url

    yield make
    for name in made:
        asyncio.run(throwaway.drop_database(name))


@pytest.fixture
def database_url(make_database: Callable[[], str]) -> str:
    return make_database()


MigratedPool = Callable[..., Awaitable[asyncpg.Pool]]


@pytest.fixture
async def migrated_pool(database_url: str) -> AsyncIterator[MigratedPool]:
    """`await migrated_pool(migrations, checks_bans=...)`: a pool on this test's database, migrated as the
    service's start migrates it, without starting the service (for the broker-free handler kit)."""
    pools: list[asyncpg.Pool] = []

    async def make(migrations: Path, *, checks_bans: bool, size: int = 4) -> asyncpg.Pool:
        pool = await create_pool(database_url, size)
        pools.append(pool)
        await migrate(pool, migrations, ban_tables(checks_bans))
        return pool

    yield make
    for pool in pools:
        await pool.close()


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An Ed25519 key pair as PEM files: (private, public)."""
    folder = tmp_path_factory.mktemp("keys")
    key = Ed25519PrivateKey.generate()
    private = folder / "jwt_private.pem"
    public = folder / "jwt_public.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture(scope="session")
def make_token(jwt_keys: tuple[Path, Path]) -> Callable[..., str]:
    """A valid access token as auth would sign it (for services tested without auth running)."""
    private_pem = jwt_keys[0].read_text()

    def make(user_id: int, role: str = "customer", email: str | None = None, ttl: timedelta = timedelta(minutes=15)) -> str:
        claims = {
            "sub": str(user_id),
            "email": email or f"user{user_id}@example.com",
            "role": role,
            "exp": datetime.now(UTC) + ttl,
        }
        return jwt.encode(claims, private_pem, algorithm="EdDSA")

    return make


_SPANS = InMemorySpanExporter()  # a process has one tracer provider: the exporter outlives each test


@pytest.fixture
def traced() -> Iterator[Callable[[], list[object]]]:
    """Tracing on for the test (shop_common.tracing, exporting in memory), off again after it: call the fixture's
    value for the spans finished so far."""
    tracing.start_tracing("test", [_SPANS])
    _SPANS.clear()

    def spans() -> list[object]:
        tracing.flush()
        return list(_SPANS.get_finished_spans())

    try:
        yield spans
    finally:
        tracing.stop_tracing()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def service_env(
    monkeypatch: pytest.MonkeyPatch, amqp_url: str, jwt_keys: tuple[Path, Path]
) -> pytest.MonkeyPatch:
    """The environment a service reads, pointed at this test's vhost; add the database URL yourself."""
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("JWT_PUBLIC_KEY_PATH", str(jwt_keys[1]))
    monkeypatch.setenv("JWT_PRIVATE_KEY_PATH", str(jwt_keys[0]))
    # Short waits between attempts, so retry tests take seconds, not minutes.
    monkeypatch.setenv("EVENT_RETRY_DELAYS_MS", "200,400,800,1600")
    return monkeypatch


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Runs the app's lifespan (pool, bus, consumers, relay) and gives a client that calls it in-process."""
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


@asynccontextmanager
async def serving_with_kit(
    app: FastAPI, router: Router, dependencies: Iterable[str] = ()
) -> AsyncIterator[tuple[httpx.AsyncClient, HandlerKit]]:
    """The app serving HTTP without its consumers (set ROLES=api first), and the handler kit delivering events
    to its handlers on the app's own pool, with the dependencies of these names from its own wiring: a test
    whose facts are seen through the API, with no broker round trip to wait for."""
    async with running(app) as client:
        settings = app.state.settings
        assert not settings.runs("consumers"), "set ROLES=api: the kit delivers the events, not the broker"
        # and the ban list, which a service that checks bans hands its UserBanned handler
        wired = {name: getattr(app.state, name) for name in [*dependencies, *(["bans"] if app.state.bans is not None else [])]}
        async with HandlerKit(
            router, app.state.pool, service=settings.service, dependencies=wired, settings=settings.bus_settings()
        ) as kit:
            yield client, kit


async def eventually(check: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> object:
    """Polls an async or sync check until it returns something truthy; fails with the last value."""
    deadline = time.monotonic() + timeout
    value: object = None
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"not true within {timeout}s; last value: {value!r}")
