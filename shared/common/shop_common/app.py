"""The one way a service app is built: request ids, errors, health, metrics, and the lifespan that wires
the pool, migrations, bus, consumers and relay. A service's main.py only says what is its own."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from shop_events import Bus, Router, correlation_id
from shop_events.asyncapi import asyncapi_document
from shop_events.outbox import OutboxRelay
from shop_events.topology import bindings
from shop_events.tracing import trace_id_of
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Admin, _bearer, current_user, require_admin
from .bans import BannedUsers
from .config import ServiceSettings
from .db import create_pool
from .logs import setup_logging
from .operations import RequestLogMiddleware, operations_router, refresh_gauges, service_queues
from .rebuild import Wiring, backfill_on_first_start, migrate_and_wire, rebuild_read_model
from .runtime import tune_gc
from .serve import CloseWhenDraining
from .tracing import flush, instrument_app, setup_tracing

log = logging.getLogger("shop_common.app")

# Background work on a clock (orders' payment deadlines): given the pool and the wiring's dependencies, runs
# until cancelled. It runs where the relay runs, the process that writes the outbox by itself.
Timer = Callable[[asyncpg.Pool, Mapping[str, object]], Coroutine[Any, Any, None]]
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Keeps the client's X-Request-ID (or makes one), makes it the correlation id, and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _SAFE_REQUEST_ID.match(sent) else uuid.uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        token = correlation_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)


class InFlightLimit:
    """Backpressure: a process holding `limit` requests already answers the next at once with 503 and
    `Retry-After: 1`, instead of queueing it behind the others for its database connection and CPU, where its
    wait (and every later one's) would grow until clients time out or drop the connection. Health and metrics
    are always answered. A client (or the gateway's other replica) tries again a second later."""

    BUSY_BODY = b'{"detail": "%s busy, try again in a moment"}'

    def __init__(self, app: ASGIApp, service: str, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self.refused = 0
        self.body = self.BUSY_BODY % service.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.limit <= 0 or scope["path"].endswith(("/health", "/metrics")):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.refused += 1
            await send({
                "type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                            (b"content-length", str(len(self.body)).encode())],
            })
            await send({"type": "http.response.body", "body": self.body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


RunningRelay = tuple[OutboxRelay, asyncio.Task[None]]


async def _shut_down(relay: RunningRelay | None, bus: Bus, pool: asyncpg.Pool, grace: float = 10.0) -> None:
    """Stop the consumers (the batch in hand finished and acked), the relay (after the publish in hand) and
    the connections, each within a grace period: a stop must never hang (past it, whatever was not acked is
    redelivered, whatever was not marked sent is published again)."""
    await bus.stop_consumers()
    if relay is not None:
        relayer, task = relay
        relayer.stop()
        if not (await asyncio.wait([task], timeout=grace))[0]:
            task.cancel()
            await asyncio.wait([task])
    try:
        await asyncio.wait_for(bus.close(), grace)
    except Exception:  # noqa: BLE001 - a broker that is away (or too slow to answer) must not block the stop
        log.warning("broker connection not closed cleanly")
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        log.warning("database connections still busy at stop; terminated")
        pool.terminate()


async def get_pool(request: Request) -> asyncpg.Pool:
    """async, though it never waits: FastAPI runs a plain function dependency in a worker thread, a hop per request."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


DbPool = Annotated[asyncpg.Pool, Depends(get_pool)]


def create_service_app(
    *,
    settings: ServiceSettings,
    router: APIRouter,
    migrations: Path,
    handlers: Router,
    checks_bans: bool,
    wiring: Wiring | None = None,
    timer: Timer | None = None,
    description: str = "",
) -> FastAPI:
    service = settings.service
    if checks_bans and "UserBanned" not in handlers.event_types:
        raise ValueError(f"{service} checks bans, so its handlers must take UserBanned (shop_common.bans.record_ban)")
    lanes = bindings(handlers.event_types)
    retries = len(settings.bus_settings().retry_delays_ms)
    queues = service_queues(service, lanes, retries)
    # JSON from the first line uvicorn writes after building the app (again in the lifespan, for tests).
    setup_logging(service, settings.log_level)
    setup_tracing(service)  # on only when OTEL_TRACES_EXPORTER names an exporter (shop_common.tracing)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(service, settings.log_level)
        tune_gc()
        app.state.settings = settings
        app.state.jwt_public_key = settings.jwt_public_key_path.read_text()
        app.state.pool = pool = await create_pool(settings.database_url, settings.db_pool_size)
        # The ban list: the routes check it (auth.current_user), the UserBanned handler adds to it (bans.record_ban).
        app.state.bans = bans = BannedUsers() if checks_bans else None
        dependencies = await migrate_and_wire(pool, migrations, wiring, bans)
        for name, dependency in dependencies.items():
            setattr(app.state, name, dependency)
        routes = handlers.bind(dependencies)
        app.state.bus = bus = Bus(service, settings.bus_settings())
        await bus.connect()
        relay: RunningRelay | None = None
        if settings.runs("consumers") and routes:
            connection = bus.connection
            assert connection is not None  # connected above

            async def backfill() -> None:
                await backfill_on_first_start(settings, handlers, pool, connection, routes)

            await bus.start_consumers(pool, routes, backfill if settings.history_backfill else None)
        if settings.runs("relay"):
            relayer = bus.relay(pool)
            relay = relayer, asyncio.create_task(relayer.run(), name=f"{service} outbox relay")
        timing: asyncio.Task[None] | None = None
        if timer is not None and relay is not None:
            timing = asyncio.create_task(timer(pool, dependencies), name=f"{service} timer")
        listening: asyncio.Task[None] | None = None
        if bans is not None and settings.runs("api"):
            listening = asyncio.create_task(bans.keep_current(settings.database_url), name=f"{service} ban list")
        log.info("started", extra={"roles": settings.roles, "handles": handlers.event_types})
        try:
            yield
        finally:
            if listening is not None:
                listening.cancel()
                await asyncio.wait([listening])
            if timing is not None:  # before the relay, which then still publishes what the timer committed
                timing.cancel()
                await asyncio.wait([timing])
            await _shut_down(relay, bus, pool)
            for dependency in dependencies.values():  # what the wiring keeps open (notifications' SMTP connections)
                closing = getattr(dependency, "aclose", None)
                if closing is not None:
                    await closing()
            flush()

    app = FastAPI(
        title=f"shop {service}",
        description=description,
        lifespan=lifespan,
        docs_url=f"/api/{service}/docs",
        openapi_url=f"/api/{service}/openapi.json",
        redoc_url=None,
    )
    app.add_middleware(RequestLogMiddleware, service=service)  # inside RequestIdMiddleware: sees the correlation id
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(InFlightLimit, service=service, limit=settings.max_requests_in_flight)
    app.add_middleware(CloseWhenDraining)  # outermost: every answer of a stopping process closes its connection
    instrument_app(app)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "internal error"}, status_code=500)

    ops = APIRouter(prefix=f"/api/{service}", tags=["operations"])

    @ops.get("/health", summary="200 when the database and the broker are reachable, else 503")
    async def health(request: Request) -> JSONResponse:
        problems = []
        try:
            await asyncio.wait_for(request.app.state.pool.fetchval("SELECT 1"), 2)
        except Exception:  # noqa: BLE001 - any failure means not ready
            problems.append("database")
        if not request.app.state.bus.connected:
            problems.append("broker")
        if problems:
            return JSONResponse({"status": "unavailable", "detail": f"{' and '.join(problems)} unreachable"}, 503)
        return JSONResponse({"status": "ok"})

    @ops.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # Scrapers on the internal network call the service directly; through the gateway
        # (which always sets X-Forwarded-For) only an admin may look.
        if "x-forwarded-for" in request.headers:
            await require_admin(await current_user(request, await _bearer(request)))
        try:  # gauges as they are now, not as the relay last saw them
            bus = request.app.state.bus
            connection = bus.connection if bus.connected else None
            await asyncio.wait_for(refresh_gauges(service, request.app.state.pool, connection, queues), 5)
        except Exception:  # noqa: BLE001 - a scrape still answers with what it has
            log.warning("metrics gauges not refreshed", exc_info=True)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @ops.get("/asyncapi.json", summary="The event catalogue as an AsyncAPI document")
    async def asyncapi() -> dict[str, Any]:
        return asyncapi_document()

    @ops.get("/events", summary="What this service published and handled for one correlation id (admin)")
    async def events(correlation_id: str, _: Admin, pool: DbPool) -> dict[str, Any]:
        published = await pool.fetch(
            "SELECT event_id, event_type, created_at AS at, sent_at, traceparent FROM outbox"
            " WHERE correlation_id = $1 ORDER BY id",
            correlation_id,
        )
        handled = await pool.fetch(
            "SELECT event_id, event_type, handled_at AS at, queue FROM processed_events"
            " WHERE correlation_id = $1 ORDER BY handled_at",
            correlation_id,
        )
        return {
            "service": service,
            # trace_id: of the trace the event was written in, while tracing is on (else null)
            "published": [
                {k: v for k, v in r.items() if k != "traceparent"} | {"trace_id": trace_id_of(r["traceparent"])}
                for r in published
            ],
            "handled": [dict(r) for r in handled],
            "trace_viewer": settings.ops_trace_viewer_url.rstrip("/") or None,
        }

    # `shop-events history rebuild <service>` finds the service's parts here (shop_common.rebuild).
    app.state.history_rebuild = functools.partial(
        rebuild_read_model, settings=settings, handlers=handlers, migrations=migrations, checks_bans=checks_bans,
        wiring=wiring,
    )
    app.include_router(ops)
    app.include_router(operations_router(service, lanes, retries))
    if settings.runs("api"):  # a consumers-only or relay-only process answers health and metrics, nothing else
        app.include_router(router)
    return app

