"""One lane's consumer: group commit of handler effects and inbox rows, ack after commit, retry or park."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import asyncpg
from aio_pika.abc import AbstractRobustQueue
from aiormq.abc import DeliveredMessage
from pydantic import ValidationError

from . import metrics, nodes, tracing
from .catalogue import ANY_ENVELOPE, CATALOGUE
from .db_types import DbConnection
from .envelope import Envelope, Event, EventData, correlation_id, handling_event
from .router import Route
from .settings import BusSettings
from .settle import Settles
from .subscription import Subscription, incoming, message_id
from .versions import NotUpcastable, upcast

log = logging.getLogger("shop_events.consumer")

# How a failure is settled (the rule, in full, is in the module's README, shared/events/README.md):
# - The database is away: the batch is held and tried again after a pause, for as long as it takes;
#   nothing counts against a message. Taking a connection failing in any way is this case too.
DATABASE_AWAY = (
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
)
# Outside a handler a socket error or a timeout means the same (inside one, it is the handler's: SMTP, say).
AWAY_OUTSIDE_HANDLERS = DATABASE_AWAY + (OSError, asyncio.TimeoutError)
# - Contention: the same transaction may well commit if run again. Tried again as it is, a few times.
CONTENTION = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,  # statement_timeout, lock_timeout
)
# - Anything else outside a handler (a deferred constraint failing at COMMIT, say) can't be pinned on one
#   event: the events are tried one by one, and an event whose own transaction fails counts an attempt.
# - A handler's own error counts an attempt for its event (wait queue, then parking queue).


STOP_GRACE_SECONDS = 8.0  # for the batch in hand at a stop (the process's own grace is 10 s)
SETTLE_RETRY_SECONDS = (0.5, 1.0, 2.0)  # pauses before a failed republish is tried again, then requeued


class DatabaseAway(Exception):
    """Taking a connection failed: whatever the error, no event is to blame."""


class Poison(Exception):
    """The message can never be handled as it is: parked at once, with this reason."""


def decode(message: DeliveredMessage, routes: Mapping[str, Route]) -> Event[EventData]:
    try:
        envelope = ANY_ENVELOPE.validate_json(message.body)
    except ValidationError:
        return _decode_step_by_step(message, routes)  # raises Poison with what is wrong
    if envelope.event_version != CATALOGUE[envelope.event_type].version:
        return _decode_step_by_step(message, routes)  # another version: upcast, or parked when newer
    _check_routing(envelope.event_type, envelope.event_id, message, routes)
    return _event(envelope, envelope.data, envelope.event_version)


def _decode_step_by_step(message: DeliveredMessage, routes: Mapping[str, Route]) -> Event[EventData]:
    try:
        envelope = Envelope.model_validate_json(message.body)
    except ValidationError as exc:
        raise Poison(f"undecodable envelope: {_short(exc)}") from exc
    spec = CATALOGUE.get(envelope.event_type)
    if spec is None:
        raise Poison(f"unknown event type {envelope.event_type!r}")
    _check_routing(envelope.event_type, envelope.event_id, message, routes)
    try:
        shaped = upcast(spec, envelope.event_version, envelope.data)
    except NotUpcastable as exc:
        raise Poison(str(exc)) from exc
    try:
        data = spec.model.model_validate(shaped)
    except ValidationError as exc:
        raise Poison(f"invalid {envelope.event_type} data: {_short(exc)}") from exc
    return _event(envelope, data, spec.version)


def _event(envelope: Envelope, data: EventData, version: int) -> Event[EventData]:
    """`version`: the shape of `data` the handler gets (the catalogue's, an older message upcast to it)."""
    return Event(
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        event_version=version,
        occurred_at=envelope.occurred_at,
        producer=envelope.producer,
        correlation_id=envelope.correlation_id,
        data=data,
    )


def _check_routing(
    event_type: str, event_id: uuid.UUID, message: DeliveredMessage, routes: Mapping[str, Route]
) -> None:
    if event_type not in routes:
        raise Poison(f"no handler for {event_type} on this queue")
    if message_id(message) != str(event_id):
        raise Poison("message_id is missing or differs from the envelope's event_id")


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:5])


class HandlerFailed(Exception):
    def __init__(self, error: BaseException, indices: list[int]) -> None:
        super().__init__(str(error))
        self.error = error
        self.indices = indices  # the positions in the batch of the events the failing call was given


Failure = tuple[DeliveredMessage, Event[EventData], BaseException]


class LaneConsumer:
    """Consumes one work queue. Deliveries are taken in batches: all their effects and inbox rows are
    committed in one transaction (group commit), then acked with one multiple-ack. Only a failing
    message goes to the wait queue; the rest of its batch commits without it."""

    def __init__(
        self,
        *,
        service: str,
        queue: AbstractRobustQueue,
        pool: asyncpg.Pool,
        routes: Mapping[str, Route],
        settler: Settles,
        settings: BusSettings,
    ) -> None:
        self._service = service
        self._queue = queue
        self._pool = pool
        self._routes = routes
        self._settler = settler
        self._settings = settings
        # A plain deque and a wake-up: an asyncio.Queue's get and put cost more than the rest of taking a batch.
        self._deliveries: deque[DeliveredMessage] = deque()
        self._arrived = asyncio.Event()
        self._subscription = Subscription(queue, self._on_delivery)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()  # set while no batch is being handled
        self._idle.set()

    @property
    def queue_name(self) -> str:
        return self._queue.name

    async def start(self) -> None:
        await self._subscription.start()
        self._task = asyncio.create_task(self._run(), name=f"consumer {self.queue_name}")

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """basic.cancel, so that nothing more arrives; the batch in hand is finished and settled (past `grace`
        it is cancelled and rolled back, and its deliveries come again); deliveries not yet taken go back."""
        if self._stopping:
            return
        self._stopping = True
        await self._subscription.cancel()
        if self._task:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
            self._task.cancel()
            await asyncio.wait([self._task])
        untaken = list(self._deliveries)
        self._deliveries.clear()
        await self._return_to_broker(untaken)

    async def _return_to_broker(self, deliveries: list[DeliveredMessage]) -> None:
        """Deliveries not handled, requeued (a stream reader overrides it: a stream refuses nacks)."""
        await _give_back(deliveries)

    async def _on_delivery(self, delivery: DeliveredMessage) -> None:
        # async, though it never waits: aiormq runs it as it is instead of wrapping it in a coroutine
        self._deliveries.append(delivery)
        self._arrived.set()

    async def _run(self) -> None:
        deliveries, size = self._deliveries, self._settings.batch_size
        while True:
            while not deliveries:
                self._arrived.clear()
                await self._arrived.wait()
            if 1 < len(deliveries) < size and self._settings.batch_linger_ms:
                # More is on its way (a backlog): a moment's wait fills the batch, and one commit then
                # carries many events. A lone event (nothing else queued) is handled at once.
                await asyncio.sleep(self._settings.batch_linger_ms / 1000)
            if self._stopping:
                return
            batch = [deliveries.popleft() for _ in range(min(size, len(deliveries)))]
            self._idle.clear()
            try:
                await self.handle_batch(batch)
            except asyncio.CancelledError:
                if not nodes.cancelled_by_connection():
                    raise  # the consumer is stopping
                # a settle that waited on a connection aiormq gave up: as any failed settle, below
                log.warning("batch not settled, its connection lost; given back to the broker", extra={"queue": self.queue_name})
                await _give_back(batch)
            except Exception:
                # handle_batch settles every delivery itself; what can still fail is the ack, when the channel
                # closes under us (the broker then delivers the batch again on the new one), or a bug. Either
                # way no later multiple-ack may cover this batch: what is still outstanding goes back.
                log.exception("batch not settled; given back to the broker", extra={"queue": self.queue_name})
                await self._return_to_broker(batch)
            finally:
                self._idle.set()

    async def handle_batch(self, batch: list[DeliveredMessage]) -> None:
        """Settle every delivery of the batch: committed and acked, sent to a wait queue, parked, or (when
        even that fails) requeued. Nothing is acked before its own fate is decided."""
        decoded: list[tuple[DeliveredMessage, Event[EventData]]] = []
        poison: list[tuple[DeliveredMessage, str]] = []
        for message in batch:
            try:
                decoded.append((message, decode(message, self._routes)))
            except Poison as exc:
                poison.append((message, str(exc)))

        failed = await self._commit(decoded)
        for _, event, error in failed:
            metrics.EVENTS_FAILED.labels(self._service, event.event_type).inc()
            log.warning(
                "handler failed; will retry",
                extra=_event_fields(event) | {"error": repr(error), "queue": self.queue_name},
            )
        # Pipelined: every republish is sent before the first confirm is awaited (a batch that failed
        # whole would otherwise wait a round trip per message).
        settles: list[tuple[DeliveredMessage, Callable[[], Awaitable[None]]]] = [
            (m, functools.partial(self._settler.park, incoming(m), self.queue_name, reason)) for m, reason in poison
        ]
        settles += [
            (m, functools.partial(self._settler.retry_or_park, incoming(m), self.queue_name, e)) for m, _, e in failed
        ]
        unsettled = await self._settle(settles)
        await _ack_all(batch, unsettled)

    async def _settle(self, settles: list[tuple[DeliveredMessage, Callable[[], Awaitable[None]]]]) -> list[DeliveredMessage]:
        """Republish to wait or parking queues. One whose republish failed (nacked, returned as unroutable,
        timed out, its channel lost) is tried again a few times, then given back to the broker (requeued)."""
        # Not tenacity: each round tries again only the settles that failed, not the whole call.
        for pause in (*SETTLE_RETRY_SECONDS, None):
            if not settles:
                return []
            results = await asyncio.gather(*(send() for _, send in settles), return_exceptions=True)
            errors = {repr(r) for r in results if isinstance(r, BaseException)}
            settles = [item for item, result in zip(settles, results, strict=True) if isinstance(result, BaseException)]
            if settles and pause is not None:
                log.warning("could not settle; trying again", extra={"queue": self.queue_name, "error": "; ".join(errors)})
                await asyncio.sleep(pause)
        log.error("could not settle; requeued", extra={"queue": self.queue_name, "count": len(settles)})
        metrics.EVENTS_REQUEUED.labels(self._service, self.queue_name).inc(len(settles))
        return [message for message, _ in settles]

    async def _commit(self, items: list[tuple[DeliveredMessage, Event[EventData]]]) -> list[Failure]:
        """Commit the batch's effects and inbox rows; returns the events whose handlers failed. Raises
        nothing but cancellation: every other error is one of the cases of the rule at the top."""
        # Our loop, not tenacity: it runs for every batch (AsyncRetrying costs ~20 us a call, this ~0.3 us).
        for tries in itertools.count(1):
            try:
                return await self._apply(items)
            except (DatabaseAway, *AWAY_OUTSIDE_HANDLERS) as exc:
                await self._pause("database unavailable; batch held", exc.__cause__ or exc, tries)
            except Exception as exc:  # noqa: BLE001 - whatever else failed is sorted out below, by the rule at the top
                if isinstance(exc, CONTENTION) and tries <= self._settings.contention_retries:
                    await self._pause("contention; batch tried again", exc, tries)
                    continue
                if len(items) == 1:
                    message, event = items[0]
                    return [(message, event, exc)]
                log.warning(
                    "batch could not commit; its events are tried one by one",
                    extra={"queue": self.queue_name, "error": repr(exc), "events": len(items)},
                )
                failed: list[Failure] = []
                for item in items:
                    failed += await self._commit([item])
                return failed
        raise AssertionError("unreachable")

    async def _pause(self, what: str, error: BaseException, tries: int) -> None:
        log.warning(what, extra={"queue": self.queue_name, "error": repr(error), "tries": tries})
        await asyncio.sleep(min(0.1 * 2**tries, 5.0))

    async def _apply(self, items: list[tuple[DeliveredMessage, Event[EventData]]]) -> list[Failure]:
        """Handle a batch in one transaction; a failing message is taken out and the rest redone.

        No savepoints: a subtransaction per message would cost round trips and, past 64 in one
        transaction, slow every other session's snapshots. A failure instead rolls the batch back and
        runs it again without the failing message, so the handlers before it run twice, once rolled
        back. Their database effects still happen once; a handler with an effect outside the database
        (mail) must make that effect idempotent itself, outside this transaction."""
        failed: list[Failure] = []
        alone: set[uuid.UUID] = set()  # events whose batch handler failed: handled one at a time
        pending = items
        while pending:
            if len(failed) >= 2 and len(pending) > 1:
                # More than one bad event in this batch (a handler failing for every event, say): redoing
                # the rest after each would cost a transaction per failure per event; one transaction
                # each is linear.
                for item in pending:
                    failed += await self._commit([item])
                break
            try:
                await self._apply_all(pending, alone)
                break
            except HandlerFailed as exc:
                if len(exc.indices) > 1:
                    alone.update(pending[i][1].event_id for i in exc.indices)
                    continue
                message, event = pending[exc.indices[0]]
                failed.append((message, event, exc.error))
                pending = [item for i, item in enumerate(pending) if i != exc.indices[0]]
        return failed

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[DbConnection]:
        try:
            conn = await self._pool.acquire()
        except Exception as exc:
            raise DatabaseAway(repr(exc)) from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    async def _apply_all(self, items: list[tuple[DeliveredMessage, Event[EventData]]], alone: set[uuid.UUID]) -> None:
        """Inbox rows and handler effects of these events, all or nothing; raises HandlerFailed."""
        async with self._connection() as conn, conn.transaction():
            fresh = {
                row["event_id"]
                for row in await conn.fetch(
                    "INSERT INTO processed_events (event_id, event_type, correlation_id, queue)"
                    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])"
                    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                    [e.event_id for _, e in items],
                    [e.event_type for _, e in items],
                    [e.correlation_id for _, e in items],
                    [self.queue_name] * len(items),
                )
            }
            todo: list[tuple[int, Event[EventData]]] = []
            for index, (_, event) in enumerate(items):
                if event.event_id in fresh:
                    fresh.discard(event.event_id)  # the same event twice in one batch runs once
                    todo.append((index, event))
                else:
                    metrics.EVENTS_DUPLICATE.labels(self._service, event.event_type).inc()
            for run in self._runs(todo, alone):
                if tracing.ON:
                    await self._run_traced(run, conn, items)
                else:
                    await self._run_handler(run, conn)
            await self._also_in_transaction(conn, items)

    async def _also_in_transaction(self, conn: DbConnection, items: list[tuple[DeliveredMessage, Event[EventData]]]) -> None:
        """What a subclass commits with the batch's effects (a history replay: its stream offset)."""

    async def _run_traced(
        self, run: list[tuple[int, Event[EventData]]], conn: DbConnection, items: list[tuple[DeliveredMessage, Event[EventData]]]
    ) -> None:
        """The handler inside its span(s), continuing the trace each message's headers carry."""
        deliveries = [
            (items[i][0].header.properties.headers, str(e.event_id), e.event_type, e.correlation_id) for i, e in run
        ]
        with tracing.handling(self.queue_name, deliveries):
            await self._run_handler(run, conn)

    def _runs(self, todo: list[tuple[int, Event[EventData]]], alone: set[uuid.UUID]) -> list[list[tuple[int, Event[EventData]]]]:
        """Consecutive events of one type with a batch handler go together; order is kept across types."""
        runs: list[list[tuple[int, Event[EventData]]]] = []
        for index, event in todo:
            groupable = self._routes[event.event_type].batch and event.event_id not in alone
            last = runs[-1] if runs else None
            if groupable and last and last[-1][1].event_type == event.event_type and last[-1][1].event_id not in alone:
                last.append((index, event))
            else:
                runs.append([(index, event)])
        return runs

    async def _run_handler(self, run: list[tuple[int, Event[EventData]]], conn: DbConnection) -> None:
        first = run[0][1]
        route = self._routes[first.event_type]
        token = correlation_id.set(first.correlation_id)
        current = {"event_id": str(first.event_id), "event_type": first.event_type}
        if len(run) > 1:
            current["events_in_run"] = str(len(run))
        event_token = handling_event.set(current)
        started = time.perf_counter()
        try:
            if route.batch:
                await route.handle([event for _, event in run], conn)
            else:
                await route.handle(first, conn)
        except DATABASE_AWAY + CONTENTION:
            raise  # not the event's fault: settled by the rule at the top
        except Exception as exc:
            raise HandlerFailed(exc, [index for index, _ in run]) from exc
        finally:
            correlation_id.reset(token)
            handling_event.reset(event_token)
        metrics.HANDLER_SECONDS.labels(self._service, first.event_type).observe(time.perf_counter() - started)
        metrics.EVENTS_HANDLED.labels(self._service, first.event_type).inc(len(run))
        if log.isEnabledFor(logging.DEBUG):  # a line per event is too dear to build when nobody reads it
            for _, event in run:
                log.debug("event handled", extra=_event_fields(event))


async def _ack_all(batch: list[DeliveredMessage], unsettled: list[DeliveredMessage]) -> None:
    """Nack (requeue) the unsettled ones one by one, then ack the rest: one multiple-ack per channel. The
    multiple-ack can't cover an undecided delivery, as every earlier batch is settled already and the
    nacked ones are no longer outstanding. A batch can straddle a reopened channel; what came on the
    closed one is neither acked nor nacked, and the broker delivers it again."""
    for delivery in unsettled:
        if not delivery.channel.is_closed:
            await delivery.channel.basic_nack(_tag(delivery), multiple=False, requeue=True)
    last_on: dict[int, DeliveredMessage] = {}
    for delivery in batch:
        last_on[id(delivery.channel)] = delivery
    for delivery in last_on.values():
        if not delivery.channel.is_closed:
            await delivery.channel.basic_ack(_tag(delivery), multiple=True)


def _tag(delivery: DeliveredMessage) -> int:
    # None only on a basic.get that found nothing; a consumer's delivery always has its tag
    if delivery.delivery_tag is None:
        raise ValueError("a delivery without a delivery tag")
    return delivery.delivery_tag


async def _give_back(batch: list[DeliveredMessage]) -> None:
    for delivery in batch:
        try:
            if not delivery.channel.is_closed:
                await delivery.channel.basic_nack(_tag(delivery), multiple=False, requeue=True)
        except Exception:  # an acked tag is refused: the channel closes and the broker redelivers the rest
            log.warning("could not give a delivery back", exc_info=True)
            return


def _event_fields(event: Event[EventData]) -> dict[str, str]:
    return {"event_id": str(event.event_id), "event_type": event.event_type, "correlation_id": event.correlation_id}
