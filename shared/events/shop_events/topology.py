"""Names and declarations of the exchange and queues; declared idempotently by each service at start."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity, ChannelPreconditionFailed
from aiormq.abc import FieldTable
from aiormq.exceptions import ChannelAccessRefused

from . import nodes
from .catalogue import CATALOGUE, Lane
from .registry import NAMES
from .settings import BusSettings

EXCHANGE = "shop.events"
# Every service that may own queues; the CLI looks for parking queues among these.
SERVICES = NAMES  # from registry.py, the one list of services
QUORUM = {"x-queue-type": "quorum"}
# Parking queues are streams: read without being changed (see parking.py). No retention limit: a parked
# message stays until it is replayed or discarded, and a stream can only drop its oldest segments.
STREAM: FieldTable = {"x-queue-type": "stream"}
# Every event published on shop.events is kept here too, for rebuilding a read model or backfilling a late
# joiner (history.py). Bound with "#": every routing key, today's and tomorrow's.
HISTORY = "shop.history"
EVERY_KEY = "#"

log = logging.getLogger("shop_events.topology")


def work_queue(service: str, lane: Lane) -> str:
    return f"{service}.{lane.value}"


def retry_queue(queue: str, n: int) -> str:
    return f"{queue}.retry.{n}"


def parking_queue(queue: str) -> str:
    return f"{queue}.dlq"


def replay_log(parking: str) -> str:
    """The stream that records which entries of a parking stream were replayed or discarded."""
    return f"{parking}.replayed"


def settle_exchange(queue_or_service: str) -> str:
    """The service's own direct exchange for retries, parking, dead-lettering back and replays: each of
    its queues is bound there by its own name, so no service needs the default exchange (which reaches
    every queue of the vhost by name)."""
    return f"{queue_or_service.split('.', 1)[0]}.settle"


def bindings(event_types: Iterable[str]) -> dict[Lane, list[str]]:
    """Routing keys per lane for the event types a service handles; unknown types fail loudly at start."""
    by_lane: dict[Lane, list[str]] = {}
    for name in event_types:
        spec = CATALOGUE[name]
        by_lane.setdefault(spec.lane, []).append(spec.routing_key)
    return {lane: sorted(keys) for lane, keys in by_lane.items()}


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


def history_arguments(max_age: str, max_bytes: int) -> FieldTable:
    """The history stream's retention: its oldest segments go when older than `max_age` or past `max_bytes`."""
    return {**STREAM, "x-max-age": max_age, "x-max-length-bytes": max_bytes}


async def ensure_exchange(connection: AbstractConnection, history: FieldTable | None = None) -> None:
    """shop.events and shop.history as they are when they exist (a deployed broker's definitions made them,
    and a service's user may not configure them); declared here only where missing, as on a fresh
    development vhost. `history`: the stream's arguments (default: BusSettings' retention)."""
    if not await _exists(connection, lambda channel: channel.declare_exchange(EXCHANGE, passive=True)):
        channel = await connection.channel()
        try:
            await declare_exchange(channel)
        finally:
            await channel.close()
    if not await _exists(connection, lambda channel: channel.declare_queue(HISTORY, passive=True)):
        try:
            await declare_history(connection, history)
        except ChannelAccessRefused:
            # A deployed broker whose definitions predate the history: the service runs on, without one.
            log.warning("shop.history is missing and this user may not declare it: load the broker's definitions;"
                        " until then no event is kept for rebuilds")


async def declare_history(connection: AbstractConnection, arguments: FieldTable | None = None) -> None:
    """The history stream, bound to every routing key of shop.events."""
    if arguments is None:
        defaults = BusSettings()
        arguments = history_arguments(defaults.history_max_age, defaults.history_max_bytes)
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(HISTORY, durable=True, arguments=arguments)
        await queue.bind(await channel.get_exchange(EXCHANGE, ensure=False), EVERY_KEY)
    finally:
        await channel.close()


async def _exists(connection: AbstractConnection, passive: Callable[[AbstractChannel], Awaitable[object]]) -> bool:
    channel = await connection.channel()
    try:
        await passive(channel)
        return True
    except ChannelNotFoundEntity:
        return False
    finally:
        await channel.close()  # also when the failed check closed it: a robust channel would reopen


async def declare_lane(
    channel: AbstractChannel, service: str, lane: Lane, routing_keys: list[str], retry_delays_ms: tuple[int, ...],
    amqp_url: str,
) -> AbstractQueue:
    """The work queue, its wait queues (TTL, then dead-lettered back) and its parking queue, each bound to
    the service's settle exchange by its own name, and the parking queue's replay log, opened when it looks
    empty (`amqp_url`: open_replay_log's own connection). shop.events must exist (ensure_exchange)."""
    exchange = await channel.get_exchange(EXCHANGE, ensure=False)
    name = work_queue(service, lane)
    settle = await channel.declare_exchange(settle_exchange(name), aio_pika.ExchangeType.DIRECT, durable=True)
    queue = await _declare_kept(channel, name, work_queue_arguments(name))
    for key in routing_keys:
        await queue.bind(exchange, key)
    await queue.bind(settle, name)
    for n, delay in enumerate(retry_delays_ms, start=1):
        wait = await _declare_kept(channel, retry_queue(name, n), wait_queue_arguments(name, delay))
        await wait.bind(settle, wait.name)
    parked = await _declare_parking(channel, parking_queue(name))
    await parked.bind(settle, parked.name)
    replayed = await channel.declare_queue(replay_log(parked.name), durable=True, arguments=STREAM)
    await replayed.bind(settle, replayed.name)
    if not replayed.declaration_result.message_count:
        await open_replay_log(amqp_url, name)
    return queue


async def open_replay_log(amqp_url: str, queue: str, attempts: int = 5) -> None:
    """The replay log's opening record, so that a reader finds its end at once instead of waiting to see
    nothing come (parking.py); written when the log looks empty (the count lags a few seconds: a second
    opening record is harmless).

    On a connection of its own: RabbitMQ 3.10 crashes a channel that publishes to a stream another client
    created a moment before, while the stream has no leader yet (rabbitmq-server#12969, fixed in 4.0.5), and
    the crash closes the whole connection. Two replicas of a service starting together meet it, one start in
    twenty here. So a closed throwaway connection is tried again a moment later, the service's own untouched."""
    name = replay_log(parking_queue(queue))
    for attempt in range(1, attempts + 1):
        try:
            async with await nodes.connect(amqp_url) as throwaway:
                channel = await throwaway.channel()
                log_queue = await channel.declare_queue(name, passive=True)
                if log_queue.declaration_result.message_count:
                    return
                settle = await channel.get_exchange(settle_exchange(queue), ensure=False)
                await settle.publish(aio_pika.Message(b'{"opened": true}', content_type="application/json",
                                                      delivery_mode=aio_pika.DeliveryMode.PERSISTENT), name)
                return
        except (AMQPError, ConnectionError) as exc:
            if attempt == attempts:
                raise
            log.warning("the replay log's opening record failed; trying again", extra={"queue": name, "error": repr(exc)})
            await asyncio.sleep(0.2 * attempt)


async def unbind_stale(connection: AbstractConnection, service: str, wanted: dict[Lane, list[str]]) -> None:
    """Topology is declared additively, so a handler removed (or an event type moved to the other lane)
    would leave its binding behind, and its events would be parked as "no handler". Every routing key of
    the catalogue that a lane's queue should not take is unbound from it, including from a lane the service
    no longer consumes at all. Unbinding a binding that does not exist is a no-op for RabbitMQ."""
    every_key = {spec.routing_key for spec in CATALOGUE.values()}
    channel = await connection.channel()
    try:
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        for lane in Lane:
            stale = sorted(every_key - set(wanted.get(lane, ())))
            try:
                queue = await channel.declare_queue(work_queue(service, lane), passive=True)
            except ChannelNotFoundEntity:
                await _reopened(channel)
                continue  # never declared: nothing is bound to it
            for key in stale:
                await queue.unbind(exchange, key)
    finally:
        await channel.close()


# Quorum queues dead-letter at most once unless told otherwise: a message would be dropped if its target
# refused it for a moment. At least once needs reject-publish overflow on the queue that dead-letters.
AT_LEAST_ONCE: FieldTable = {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
# RabbitMQ 4's default for quorum queues, set here so 3.x behaves the same: a message delivered this many
# times without a settle (a consumer that crashes on it, a settle that keeps failing) is dead-lettered
# to the parking queue rather than handed out forever (or, on 4 without a dead-letter exchange, dropped).
DELIVERY_LIMIT = 20


def work_queue_arguments(queue: str) -> FieldTable:
    return {
        **QUORUM, **AT_LEAST_ONCE, "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": settle_exchange(queue), "x-dead-letter-routing-key": parking_queue(queue),
    }


def wait_queue_arguments(queue: str, delay_ms: int) -> FieldTable:
    """A wait queue holds a message `delay_ms`, then dead-letters it back to its work queue."""
    return {
        **QUORUM, **AT_LEAST_ONCE, "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": settle_exchange(queue), "x-dead-letter-routing-key": queue,
    }


def upgrade_policies(services: Iterable[str]) -> list[dict[str, object]]:
    """The queue arguments above as broker policies (deploy/broker/definitions.py loads them), so that queues
    made by an older version, whose arguments can't change, get them in place without losing what they hold:
    each work queue dead-letters to its parking queue, every wait queue dead-letters at least once. Queue
    arguments win over a policy, so queues declared with them behave the same either way."""
    def policy_keys(arguments: FieldTable) -> dict[str, object]:
        return {k.removeprefix("x-"): v for k, v in arguments.items() if k != "x-queue-type"}

    found: list[dict[str, object]] = []
    for service in services:
        for lane in Lane:
            queue = work_queue(service, lane)
            found.append({"name": f"shop-{queue}", "pattern": f"^{re.escape(queue)}$", "apply-to": "queues",
                          "priority": 0, "definition": policy_keys(work_queue_arguments(queue))})
        found.append({"name": f"shop-{service}-wait-queues", "pattern": rf"^{re.escape(service)}\..*\.retry\.\d+$",
                      "apply-to": "queues", "priority": 0, "definition": policy_keys(AT_LEAST_ONCE)})
    return found


async def _declare_parking(channel: AbstractChannel, name: str) -> AbstractQueue:
    """A parking queue left by an older version is a quorum queue (a queue's type can't change): it is kept
    as it is, still parked into, listed and replayed the old way, until `shop-events parked upgrade` moves
    its messages into a stream of the same name."""
    return await _declare_kept(channel, name, STREAM, "parking queue is a quorum queue from an older version;"
                               " run `shop-events parked upgrade`")


async def _declare_kept(
    channel: AbstractChannel,
    name: str,
    arguments: FieldTable,
    mismatch: str = "queue declared earlier with other arguments; kept as it is",
) -> AbstractQueue:
    """A queue left by an older version with other arguments (no dead-lettering, another TTL, the default
    exchange as dead-letter exchange) is kept as it is and the mismatch logged: its arguments can't change,
    and deleting it would lose what it holds. The broker's policies (deploy/broker/definitions.py) give it
    the new dead-lettering in place; see the README's "Upgrading queues in place"."""
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed:
        await _reopened(channel)
    log.warning(mismatch, extra={"queue": name})
    return await channel.declare_queue(name, passive=True)


async def _reopened(channel: AbstractChannel) -> None:
    """After the broker closed the channel over a failed declare: a robust channel reopens itself."""
    ready = getattr(channel, "ready", None)
    for _ in range(100):
        if not channel.is_closed:
            if ready is not None:
                await ready()
            return
        await asyncio.sleep(0.05)
    await channel.reopen()
