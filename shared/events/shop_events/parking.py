"""Listing and replaying parked messages (the `<queue>.dlq` queues)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelClosed

from .catalogue import Lane
from .settle import ATTEMPT, ORIGINAL_ROUTING_KEY, PARKED_AT, PARKED_FROM, PARKED_REASON, REPLAYED, copy_message
from .topology import SERVICES, parking_queue, settle_exchange, work_queue


@dataclass(frozen=True)
class ParkedMessage:
    queue: str
    message_id: str | None
    event_type: str | None
    reason: str
    parked_at: str
    attempts: int
    routing_key: str
    body: str


def _parked(message: AbstractIncomingMessage, queue: str) -> ParkedMessage:
    headers = message.headers or {}
    return ParkedMessage(
        queue=queue,
        message_id=message.message_id,
        event_type=message.type,
        reason=str(headers.get(PARKED_REASON, "")),
        parked_at=str(headers.get(PARKED_AT, "")),
        attempts=int(headers.get(ATTEMPT, 0) or 0),
        routing_key=str(headers.get(ORIGINAL_ROUTING_KEY, "")),
        body=message.body.decode(errors="replace"),
    )


async def parking_queues(connection: AbstractConnection) -> list[str]:
    """The parking queues that exist, out of every service's lanes."""
    found = []
    for service in SERVICES:
        for lane in Lane:
            name = parking_queue(work_queue(service, lane))
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                found.append(name)
            except ChannelClosed:
                continue
            finally:
                if not channel.is_closed:
                    await channel.close()
    return found


async def _take_all(channel: AbstractChannel, name: str, limit: int | None = None) -> list[AbstractIncomingMessage]:
    """Every message in the queue (or the first `limit`), unacked: closing the channel puts back whatever was not acked."""
    queue = await channel.declare_queue(name, passive=True)
    taken = []
    while (limit is None or len(taken) < limit) and (message := await queue.get(no_ack=False, fail=False)) is not None:
        taken.append(message)
    return taken


async def list_parked(connection: AbstractConnection, queue: str, limit: int | None = None) -> list[ParkedMessage]:
    channel = await connection.channel()
    try:
        return [_parked(m, queue) for m in await _take_all(channel, queue, limit)]
    finally:
        await channel.close()


async def replay(connection: AbstractConnection, queue: str, message_id: str | None = None) -> int:
    """Send parked messages (all, or the one with this message id) back to their work queue, attempts reset.

    Each is republished with a confirm before it is acked on the parking queue, so a crash here
    can duplicate a message (the inbox skips it) but never lose one.
    """
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    replayed = 0
    try:
        for message in await _take_all(channel, queue):
            if message_id is not None and message.message_id != message_id:
                continue
            headers = message.headers or {}
            target = str(headers.get(PARKED_FROM) or queue.removesuffix(".dlq"))
            again = copy_message(message, {ATTEMPT: 0, REPLAYED: int(headers.get(REPLAYED, 0) or 0) + 1})
            exchange = await channel.get_exchange(settle_exchange(target), ensure=False)
            await exchange.publish(again, target, mandatory=True)
            await message.ack()
            replayed += 1
    finally:
        await channel.close()
    return replayed


async def connect(amqp_url: str) -> AbstractConnection:
    return await aio_pika.connect(amqp_url, client_properties={"connection_name": "shop-events cli"})


def run(coro):  # noqa: ANN001, ANN201 - a tiny sync bridge for the CLI
    return asyncio.run(coro)
