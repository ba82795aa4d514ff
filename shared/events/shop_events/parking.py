"""Listing, replaying and discarding parked messages (the `<queue>.dlq` streams).

A parking queue is a RabbitMQ stream, so reading it changes nothing: no redelivery, no delivery count, the
same order every time. (A quorum queue counts each basic.get as a delivery, and RabbitMQ 4's default delivery
limit of 20 would drop a parked message after 20 listings.) A stream can't remove one entry, so what was
replayed or discarded is written down in a second, small stream, the replay log `<queue>.dlq.replayed`:
`{"offset": n}` for one entry, `{"through": n}` for every entry up to n (a replay of all). Listing reads the
replay log, then the parking stream from the first offset after the last `through`, and hides the entries
the log names: the first page costs the page, and the count costs no reading of the parked messages at all.

Where a stream ends: AMQP 0-9-1 has no "end of stream" signal, and a passive declare's message count for a
stream is a statistic refreshed every few seconds (RabbitMQ 3.10). So a consumer attached at `last` (the
last chunk) names the last offset: its first delivery comes at once when the stream has anything, and the
rest of that chunk arrives in the same batch. Readers then stop at that offset, without waiting for silence.
A stream that looks empty (count 0: empty, or written to in the last seconds) is given EMPTY_GRACE; the
replay log never is, as it opens with a `{"opened": true}` record (topology.declare_lane writes it).

A replay republishes each message to its work queue, attempts reset, with a confirm, before the replay log
records it; a crash in between can replay a message twice (the inbox skips it), never lose one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractIncomingMessage
from aio_pika.exceptions import ChannelClosed, ChannelPreconditionFailed

from . import nodes
from .catalogue import Lane
from .envelope import now_utc
from .settle import ATTEMPT, ORIGINAL_ROUTING_KEY, PARKED_AT, PARKED_FROM, PARKED_REASON, REPLAYED, copy_message, int_header
from .topology import SERVICES, STREAM, parking_queue, replay_log, settle_exchange, work_queue

OFFSET = "x-stream-offset"  # RabbitMQ's header on every message read from a stream
PREFETCH = 1000  # a stream consumer must set one; acks only give credit back
EMPTY_GRACE = 0.25  # seconds an empty-looking stream is given to show its last chunk (ms when it has one)
TAIL_GRACE = 0.05  # seconds for the rest of the last chunk, already sent in one batch
READ_TIMEOUT = 30.0  # a delivery the broker owes us that does not come is an error, not the end
REPLAY_BATCH = 500  # publishes awaited together (each confirmed) before the replay log records them


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
    offset: int | None = None  # its place in the stream (None on a quorum queue from an older version)


def _parked(message: AbstractIncomingMessage, queue: str) -> ParkedMessage:
    headers = message.headers or {}
    return ParkedMessage(
        queue=queue,
        message_id=message.message_id,
        event_type=message.type,
        reason=str(headers.get(PARKED_REASON) or _dead_lettered_reason(headers)),
        parked_at=str(headers.get(PARKED_AT, "")),
        attempts=int_header(headers, ATTEMPT),
        routing_key=str(headers.get(ORIGINAL_ROUTING_KEY, "")),
        body=message.body.decode(errors="replace"),
        offset=_offset(message) if OFFSET in headers else None,
    )


def _dead_lettered_reason(headers: Mapping[str, object]) -> str:
    """Parked by the broker, not the Settler: the work queue dead-lettered it (its delivery limit reached).
    At-least-once dead-lettering sets only the x-first-death-* headers, not x-death."""
    if "x-first-death-reason" not in headers:
        return ""
    return (f"dead-lettered by the broker from {headers.get('x-first-death-queue')}:"
            f" {headers['x-first-death-reason']} (handed out too often without a settle)")


def _offset(message: AbstractIncomingMessage) -> int:
    return int_header(message.headers, OFFSET)


async def parking_queues(connection: AbstractConnection) -> list[str]:
    """The parking queues that exist, out of every service's lanes."""
    found = []
    for service in SERVICES:
        for lane in Lane:
            name = parking_queue(work_queue(service, lane))
            if await _declared_count(connection, name) is not None:
                found.append(name)
    return found


# ---- reading a stream ----

async def _declared_count(connection: AbstractConnection, name: str) -> int | None:
    """The broker's message count by a passive declare; None when the queue is not declared."""
    channel = await connection.channel()
    try:
        return (await channel.declare_queue(name, passive=True)).declaration_result.message_count
    except ChannelClosed:
        return None
    finally:
        if not channel.is_closed:
            await channel.close()


async def _is_stream(connection: AbstractConnection, name: str) -> bool:
    """Whether an existing queue is a stream: declaring it again as one is refused for any other type."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(name, durable=True, arguments=STREAM)
        return True
    except ChannelPreconditionFailed:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


class _Reader:
    """One stream consumer from an offset, on its own channel: the messages in stream order."""

    def __init__(self, prefetch: int) -> None:
        self._prefetch = prefetch
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._unacked = 0

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._arrived.put_nowait(message)

    async def next(self, timeout: float) -> AbstractIncomingMessage | None:
        if not self._arrived.empty():  # no timer for a message already here: most of them, reading through
            message = self._arrived.get_nowait()
        else:
            try:
                message = await asyncio.wait_for(self._arrived.get(), timeout)
            except TimeoutError:
                return None
        self._unacked += 1
        if self._unacked >= max(1, self._prefetch // 2):  # credit back; on a stream an ack removes nothing
            await message.ack(multiple=True)
            self._unacked = 0
        return message


@asynccontextmanager
async def _reading(
    connection: AbstractConnection, name: str, offset: int | str, prefetch: int = PREFETCH
) -> AsyncIterator[_Reader]:
    channel = await connection.channel()
    try:
        await channel.set_qos(prefetch_count=prefetch)
        reader = _Reader(prefetch)
        queue = await channel.get_queue(name, ensure=False)
        await queue.consume(reader._on_message, no_ack=False, arguments={OFFSET: offset})
        yield reader
    finally:
        if not channel.is_closed:
            await channel.close()  # ends the consumer; nothing goes back anywhere


async def _last_offset(connection: AbstractConnection, name: str) -> int | None:
    """The offset of the stream's last message now; None when it is empty."""
    count = await _declared_count(connection, name)
    async with _reading(connection, name, "last") as reader:
        first = await reader.next(READ_TIMEOUT if count else EMPTY_GRACE)
        if first is None:
            if count:
                raise TimeoutError(f"{name} holds {count} messages but sent none in {READ_TIMEOUT}s")
            return None
        last = _offset(first)
        while (more := await reader.next(TAIL_GRACE)) is not None:
            last = _offset(more)
        return last


async def _entries(connection: AbstractConnection, name: str, start: int, end: int,
                   prefetch: int = PREFETCH) -> AsyncGenerator[AbstractIncomingMessage, None]:
    """The stream's messages with offsets start..end, in order (close it with aclosing when leaving early)."""
    if start > end:
        return
    async with _reading(connection, name, start, prefetch) as reader:
        while (message := await reader.next(READ_TIMEOUT)) is not None:
            yield message
            if _offset(message) >= end:
                return
        raise TimeoutError(f"{name}: no message in {READ_TIMEOUT}s before offset {end}")


@dataclass
class _Settled:
    """What the replay log says: every offset up to `through`, and these, were replayed or discarded."""

    through: int = -1
    offsets: set[int] = field(default_factory=set)

    def settled(self, offset: int) -> bool:
        return offset <= self.through or offset in self.offsets


async def _settled(connection: AbstractConnection, parking: str) -> _Settled:
    state = _Settled()
    log = replay_log(parking)
    if await _declared_count(connection, log) is None:  # nothing was ever replayed from here
        return state
    end = await _last_offset(connection, log)
    async for entry in _entries(connection, log, 0, -1 if end is None else end):
        record = json.loads(entry.body)
        if "through" in record:
            state.through = max(state.through, int(record["through"]))
        elif "offset" in record:
            state.offsets.add(int(record["offset"]))
    return state


@dataclass
class _Stream:
    """A parking stream as it is at the start of an operation."""

    settled: _Settled
    end: int | None

    def live(self) -> int:
        if self.end is None:
            return 0
        through = self.settled.through
        return self.end - through - sum(1 for o in self.settled.offsets if through < o <= self.end)


async def _open_stream(connection: AbstractConnection, queue: str) -> _Stream | None:
    """The stream's state, or None for a quorum parking queue from an older version (read the old way).
    Raises ChannelClosed (not found) when the queue is not declared."""
    channel = await connection.channel()
    try:
        await channel.declare_queue(queue, passive=True)
    finally:
        if not channel.is_closed:
            await channel.close()
    if not await _is_stream(connection, queue):
        return None
    settled, end = await asyncio.gather(_settled(connection, queue), _last_offset(connection, queue))
    return _Stream(settled, end)


async def _live(connection: AbstractConnection, queue: str, stream: _Stream, limit: int | None = None,
                at: int | None = None) -> AsyncGenerator[AbstractIncomingMessage, None]:
    """The parked messages not yet replayed or discarded, oldest first (or only the one at offset `at`); for a
    page of `limit`, the broker sends not many more than that ahead."""
    if stream.end is None:
        return
    start, end = (stream.settled.through + 1, stream.end) if at is None else (at, min(at, stream.end))
    prefetch = PREFETCH if limit is None else max(10, min(PREFETCH, limit + len(stream.settled.offsets)))
    async with aclosing(_entries(connection, queue, start, end, 1 if at is not None else prefetch)) as entries:
        async for message in entries:
            if not stream.settled.settled(_offset(message)):
                yield message


# ---- what the CLI, the operations page and make status call ----

async def list_parked(connection: AbstractConnection, queue: str, limit: int | None = None) -> list[ParkedMessage]:
    """The parked messages (the first `limit`), oldest first; reading them changes nothing."""
    stream = await _open_stream(connection, queue)
    if stream is None:
        return await _legacy_list(connection, queue, limit)
    found: list[ParkedMessage] = []
    if limit is not None and limit <= 0:
        return found
    async with aclosing(_live(connection, queue, stream, limit)) as messages:
        async for message in messages:
            found.append(_parked(message, queue))
            if limit is not None and len(found) >= limit:
                break
    return found


async def count_parked(connection: AbstractConnection, queue: str) -> int:
    """How many messages wait in this parking queue, without reading them."""
    stream = await _open_stream(connection, queue)
    if stream is None:
        return await _declared_count(connection, queue) or 0  # a quorum queue's count is exact
    return stream.live()


async def replay(connection: AbstractConnection, queue: str, message_id: str | None = None, offset: int | None = None) -> int:
    """Send parked messages (all, or those with this message id) back to their work queue, attempts reset.
    With the `offset` a listing gave, only that entry is read (if it has this id), not the whole stream."""
    return await _settle_parked(connection, queue, message_id, offset, send=True)


async def discard(connection: AbstractConnection, queue: str, message_id: str | None = None, offset: int | None = None) -> int:
    """Drop parked messages (all, or those with this message id) for good: they are no longer listed."""
    return await _settle_parked(connection, queue, message_id, offset, send=False)


async def _settle_parked(connection: AbstractConnection, queue: str, message_id: str | None, offset: int | None,
                         send: bool) -> int:
    stream = await _open_stream(connection, queue)
    if stream is None:
        return await _legacy_take(connection, queue, message_id, send)
    if offset is not None and (message_id is None or stream.settled.settled(offset)):
        return 0  # an offset names one message: with its id, and only while it is still parked
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    exchanges: dict[str, AbstractExchange] = {}

    async def exchange(name: str) -> AbstractExchange:
        if name not in exchanges:
            exchanges[name] = await channel.get_exchange(name, ensure=False)
        return exchanges[name]

    batch: list[tuple[int, Awaitable[None]]] = []
    done, seen = 0, stream.settled.through

    async def record() -> None:
        """The batch's publishes each confirmed first; then the replay log names what is done."""
        nonlocal batch
        await asyncio.gather(*(publish for _, publish in batch))
        entries = [{"through": seen}] if message_id is None else [{"offset": o} for o, _ in batch]
        log = await exchange(settle_exchange(queue))
        for entry in entries:
            body = {**entry, "action": "replayed" if send else "discarded", "at": now_utc().isoformat()}
            await log.publish(aio_pika.Message(json.dumps(body).encode(), content_type="application/json",
                                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                              replay_log(queue), mandatory=True)
        batch = []

    try:
        async with aclosing(_live(connection, queue, stream, at=offset)) as messages:
            async for message in messages:
                seen = _offset(message)
                if message_id is not None and message.message_id != message_id:
                    continue
                batch.append((seen, _send_back(message, queue, exchange) if send else asyncio.sleep(0)))
                done += 1
                if len(batch) >= REPLAY_BATCH:
                    await record()
        if message_id is None and done:
            seen = stream.end if stream.end is not None else seen
            await record()
        elif batch:
            await record()
    finally:
        await channel.close()
    return done


async def _send_back(
    message: AbstractIncomingMessage, queue: str, exchange: Callable[[str], Awaitable[AbstractExchange]]
) -> None:
    headers = message.headers or {}
    target = str(headers.get(PARKED_FROM) or queue.removesuffix(".dlq"))
    again = _as_parked(message)
    again.headers.update({ATTEMPT: 0, REPLAYED: int_header(headers, REPLAYED) + 1})
    await (await exchange(settle_exchange(target))).publish(again, target, mandatory=True)


# ---- quorum parking queues from an older version ----

async def _legacy_take_all(channel: AbstractChannel, name: str, limit: int | None = None) -> list[AbstractIncomingMessage]:
    """Every message (or the first `limit`), unacked: closing the channel puts back what was not acked.
    Each of these counts as a delivery on a quorum queue: `shop-events parked upgrade` ends that."""
    queue = await channel.declare_queue(name, passive=True)
    taken: list[AbstractIncomingMessage] = []
    while (limit is None or len(taken) < limit) and (message := await queue.get(no_ack=False, fail=False)) is not None:
        taken.append(message)
    return taken


async def _legacy_list(connection: AbstractConnection, queue: str, limit: int | None) -> list[ParkedMessage]:
    channel = await connection.channel()
    try:
        return [_parked(m, queue) for m in await _legacy_take_all(channel, queue, limit)]
    finally:
        await channel.close()


async def _legacy_take(connection: AbstractConnection, queue: str, message_id: str | None, send: bool) -> int:
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    done = 0
    try:
        for message in await _legacy_take_all(channel, queue):
            if message_id is not None and message.message_id != message_id:
                continue
            if send:
                await _send_back(message, queue, lambda name: channel.get_exchange(name, ensure=False))
            await message.ack()
            done += 1
    finally:
        await channel.close()
    return done


async def upgrade(connection: AbstractConnection, queue: str) -> int:
    """Make a quorum parking queue from an older version a stream of the same name, keeping every message and
    its order: each is moved, confirmed, into a holding stream `<queue>.upgrading`; the emptied quorum queue is
    deleted; the stream is declared and the messages copied in (confirmed); the holding stream is deleted.
    Safe to run again after a crash (nothing is copied twice). Returns how many messages were copied in.
    Run it with the services stopped: meanwhile a park finds no queue, is refused and retried."""
    holding = f"{queue}.upgrading"
    async with _confirming(connection, queue) as (channel, settle):
        holder = await channel.declare_queue(holding, durable=True, arguments=STREAM)
        await holder.bind(settle, holding)
        if await _declared_count(connection, queue) is not None and not await _is_stream(connection, queue):
            old = await channel.declare_queue(queue, passive=True)
            await old.unbind(settle, queue)  # parks land nowhere now, so none is lost after the drain
            while (message := await old.get(no_ack=False, fail=False)) is not None:
                await settle.publish(_as_parked(message), holding, mandatory=True)
                await message.ack()
            await old.delete(if_unused=False, if_empty=False)
    # A new channel: the old one still holds the deleted quorum queue's state under the same name.
    async with _confirming(connection, queue) as (channel, settle):
        parked = await channel.declare_queue(queue, durable=True, arguments=STREAM)
        await parked.bind(settle, queue)
        present = {_identity(m) for m in await _all_entries(connection, queue)}
        copied = 0
        for message in await _all_entries(connection, holding):
            if _identity(message) not in present:
                await settle.publish(_as_parked(message), queue, mandatory=True)
                copied += 1
        await channel.queue_delete(holding)
    return copied


@asynccontextmanager
async def _confirming(connection: AbstractConnection, queue: str) -> AsyncIterator[tuple[AbstractChannel, AbstractExchange]]:
    """A channel with confirms, and the settle exchange of the queue's service on it."""
    channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
    try:
        yield channel, await channel.get_exchange(settle_exchange(queue), ensure=False)
    finally:
        if not channel.is_closed:
            await channel.close()


def _as_parked(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The parked message again, without what the queue it was read from added."""
    again = copy_message(message, {})
    for header in (OFFSET, "x-delivery-count"):
        again.headers.pop(header, None)
    return again


def _identity(message: AbstractIncomingMessage) -> tuple[str | None, str, str, bytes]:
    headers = message.headers or {}
    return message.message_id, str(headers.get(PARKED_AT, "")), str(headers.get(PARKED_FROM, "")), message.body


async def _all_entries(connection: AbstractConnection, name: str) -> list[AbstractIncomingMessage]:
    end = await _last_offset(connection, name)
    if end is None:
        return []
    async with aclosing(_entries(connection, name, 0, end)) as entries:
        return [m async for m in entries]


async def connect(amqp_url: str) -> AbstractConnection:
    return await nodes.connect(amqp_url, client_properties={"connection_name": "shop-events cli"})


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """A tiny sync bridge for the CLI."""
    return asyncio.run(coro)
