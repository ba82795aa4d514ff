"""What the people who run the shop look at: one JSON log line and metrics per request, this service's queues
(depth and consumers, by a passive declare: no management plugin needed), its parked messages (read from
their streams, never taken) and their replay, and the correlation ids of the events it published about one thing
(an order, a product)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Literal

import asyncpg
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelClosed
from fastapi import APIRouter, HTTPException, Query, Request, status
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel, Field
from shop_events import Bus, Lane, history, parking
from shop_events.outbox import outbox_backlog, record_backlog
from shop_events.topology import HISTORY, parking_queue, retry_queue, work_queue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Admin

log = logging.getLogger("shop_common.requests")

# Our own few lines, not prometheus-fastapi-instrumentator: it would rename the series (http_requests_total with
# `handler` and statuses grouped as 2xx) that the README, deploy/prometheus/alerts.yml and the Grafana dashboard
# use, and add nothing these lines lack (route template, service, exact status; tests/observability checks them).
HTTP_REQUESTS = Counter("shop_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"])
HTTP_SECONDS = Histogram("shop_http_request_seconds", "HTTP request latency", ["service", "method", "route"])
QUEUE_MESSAGES = Gauge("shop_queue_messages", "Messages ready in a queue (refreshed when scraped)", ["service", "queue"])
QUEUE_CONSUMERS = Gauge("shop_queue_consumers", "Consumers on a queue (refreshed when scraped)", ["service", "queue"])
PARKED = Gauge("shop_parked_messages", "Messages waiting in a parking queue (refreshed when scraped)", ["service", "queue"])

# Probes and scrapers call these every few seconds: their lines are debug, not info.
_QUIET_ROUTES = re.compile(r"/(health|metrics)$")


class RequestLogMiddleware:
    """One JSON line and the request metrics per HTTP request, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = {"status": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method, code = scope["method"], answered["status"]
            HTTP_REQUESTS.labels(self.service, method, route, str(code)).inc()
            HTTP_SECONDS.labels(self.service, method, route).observe(seconds)
            level = logging.DEBUG if _QUIET_ROUTES.search(route) and code < 400 else logging.INFO
            log.log(
                level,
                f"{method} {scope['path']} {code}",
                extra={"method": method, "path": scope["path"], "route": route, "status": code, "ms": round(seconds * 1000, 2)},
            )


# ---- queues ----

QueueKind = Literal["work", "retry", "parked"]


class QueueState(BaseModel):
    name: str
    lane: str
    kind: QueueKind
    exists: bool
    messages: int | None
    consumers: int | None


class ServiceQueues(BaseModel):
    service: str
    queues: list[QueueState]


def service_queues(service: str, lanes: Iterable[Lane], retries: int) -> list[tuple[str, Lane, QueueKind]]:
    """Every queue this service owns: per lane, the work queue, its wait queues and its parking queue."""
    found: list[tuple[str, Lane, QueueKind]] = []
    for lane in sorted(lanes, key=lambda lane: lane.value):
        name = work_queue(service, lane)
        found.append((name, lane, "work"))
        found += [(retry_queue(name, n), lane, "retry") for n in range(1, retries + 1)]
        found.append((parking_queue(name), lane, "parked"))
    return found


async def queue_states(connection: AbstractConnection, queues: list[tuple[str, Lane, QueueKind]]) -> list[QueueState]:
    """Depth and consumers of each queue by a passive declare; a queue not declared yet is reported missing.
    A parking queue is a stream, whose depth would count replayed messages too: its messages are the ones
    still parked, counted without reading them (parking.count_parked), the parking queues side by side."""
    states = []
    for name, lane, kind in queues:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(name, passive=True)
            result = declared.declaration_result
            states.append(QueueState(name=name, lane=lane.value, kind=kind, exists=True,
                                     messages=result.message_count, consumers=result.consumer_count))
        except ChannelClosed:
            states.append(QueueState(name=name, lane=lane.value, kind=kind, exists=False, messages=None, consumers=None))
        finally:
            if not channel.is_closed:
                await channel.close()
    parked = [state for state in states if state.kind == "parked" and state.exists]
    counts = await asyncio.gather(*(parking.count_parked(connection, state.name) for state in parked))
    for state, count in zip(parked, counts, strict=True):
        state.messages = count
    return states


async def refresh_gauges(service: str, pool: asyncpg.Pool, connection: AbstractConnection | None,
                         queues: list[tuple[str, Lane, QueueKind]]) -> None:
    """Outbox depth and age, queue depths, consumers and parked counts as they are now, for a scrape."""
    record_backlog(service, await outbox_backlog(pool))
    if connection is None or not queues:
        return
    for state in await queue_states(connection, queues):
        if not state.exists:
            continue
        QUEUE_MESSAGES.labels(service, state.name).set(state.messages or 0)
        QUEUE_CONSUMERS.labels(service, state.name).set(state.consumers or 0)
        if state.kind == "parked":
            PARKED.labels(service, state.name).set(state.messages or 0)


# ---- parked messages ----

class Parked(BaseModel):
    queue: str
    message_id: str | None
    event_type: str | None
    correlation_id: str | None
    reason: str
    parked_at: str
    attempts: int
    routing_key: str
    body: str
    offset: int | None = None  # its place in the parking stream


class ServiceParked(BaseModel):
    service: str
    parked: list[Parked]


class Replayed(BaseModel):
    message_id: str
    queue: str
    replayed: int


def _correlation_of(body: str) -> str | None:
    try:
        found = json.loads(body).get("correlation_id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


class HistoryStream(BaseModel):
    name: str
    messages: int | None = Field(description="the broker's count (refreshed every few seconds); null: not declared")
    first_offset: int | None
    last_offset: int | None
    oldest_at: datetime | None = Field(description="occurred_at of the oldest event the stream still keeps")


class HistoryReplay(BaseModel):
    next_offset: int
    end_offset: int | None = Field(description="the stream's last offset when the replay began: caught up past it")
    replayed: int
    started_at: datetime
    finished_at: datetime | None = Field(description="null while a rebuild or backfill runs (or was killed)")


class ServiceHistory(BaseModel):
    service: str
    stream: HistoryStream
    replay: HistoryReplay | None = Field(description="this service's last rebuild or backfill; null: none yet")


class CorrelationIds(BaseModel):
    service: str
    field: str
    value: str
    correlation_ids: list[str]


def operations_router(service: str, lanes: Iterable[Lane], retries: int) -> APIRouter:
    """Admin routes on every service; the operations page (deploy/ops) calls them through the gateway."""
    queues = service_queues(service, lanes, retries)
    parking_queues = [name for name, _, kind in queues if kind == "parked"]
    ops = APIRouter(prefix=f"/api/{service}", tags=["operations"])

    def bus_connection(request: Request) -> AbstractConnection:
        bus: Bus = request.app.state.bus
        if not bus.connected or bus.connection is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the broker is unreachable")
        return bus.connection

    @ops.get("/queues", response_model=ServiceQueues, summary="This service's queues: depth and consumers (admin)")
    async def list_queues(request: Request, _: Admin) -> ServiceQueues:
        states = await asyncio.wait_for(queue_states(bus_connection(request), queues), 10)
        return ServiceQueues(service=service, queues=states)

    @ops.get("/parked", response_model=ServiceParked, summary="Messages parked in this service's queues, with why (admin)")
    async def list_parked(request: Request, _: Admin, limit: int = Query(100, ge=1, le=1000)) -> ServiceParked:
        connection = bus_connection(request)
        found: list[Parked] = []
        for name in parking_queues:  # read, never taken: listing changes nothing however often it runs
            try:
                messages = await parking.list_parked(connection, name, limit - len(found))
            except ChannelClosed:  # not declared yet: nothing was ever parked there
                continue
            found += [Parked(**asdict(m), correlation_id=_correlation_of(m.body)) for m in messages]
            if len(found) >= limit:
                break
        return ServiceParked(service=service, parked=found)

    @ops.post(
        "/parked/{message_id}/replay",
        response_model=Replayed,
        summary="Send one parked message back to its work queue, attempts reset (admin)",
        responses={404: {"description": "no parked message with that id"}},
    )
    async def replay_parked(
        request: Request,
        message_id: str,
        _: Admin,
        queue: str | None = Query(None, max_length=200, description="the parking queue the listing named"),
        offset: int | None = Query(None, ge=0, description="the offset the listing gave: only that entry is read"),
    ) -> Replayed:
        connection = bus_connection(request)
        for name in parking_queues if queue is None else [q for q in parking_queues if q == queue]:
            try:
                count = await parking.replay(connection, name, message_id, offset if queue is not None else None)
            except ChannelClosed:
                continue
            if count:
                log.info("parked message replayed", extra={"queue": name, "message_id": message_id, "count": count})
                return Replayed(message_id=message_id, queue=name, replayed=count)
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no parked message {message_id} in {service}'s queues")

    @ops.get("/history", response_model=ServiceHistory,
             summary="The history stream's size, offsets and oldest event, and this service's rebuild position (admin)")
    async def history_state(request: Request, _: Admin) -> ServiceHistory:
        stream = await asyncio.wait_for(history.stream_state(bus_connection(request)), 10)
        replay = await history.position(request.app.state.pool, service)
        return ServiceHistory(
            service=service, stream=HistoryStream(name=HISTORY, **asdict(stream)),
            replay=HistoryReplay(**asdict(replay)) if replay else None,
        )

    @ops.get(
        "/events/correlations",
        response_model=CorrelationIds,
        summary="Correlation ids of the events this service published whose data has field = value (admin)",
    )
    async def correlations(
        request: Request,
        _: Admin,
        field: str = Query(..., pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["order_id"]),
        value: str = Query(..., max_length=200),
    ) -> CorrelationIds:
        rows = await request.app.state.pool.fetch(
            "SELECT correlation_id FROM outbox WHERE (body::jsonb -> 'data' ->> $1) = $2"
            " GROUP BY correlation_id ORDER BY min(id)",
            field,
            value,
        )
        return CorrelationIds(service=service, field=field, value=value, correlation_ids=[r["correlation_id"] for r in rows])

    return ops
