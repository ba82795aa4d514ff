"""The bus of one service process: the publisher, the relay and the lane consumers, on one robust connection,
but for the immediate lane's consumer, which has a connection of its own.

The immediate lane has a connection of its own because one TCP connection delivers in order: while a
background lane drains a backlog, up to its prefetch of deliveries sit in the socket ahead of a ban, and the
ban waited 100-150 ms behind them (make bench, ban_effect_p99_ms_under_backlog)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from aio_pika.abc import AbstractRobustConnection, AbstractRobustQueue

from . import nodes
from .catalogue import Lane
from .consumer import LaneConsumer
from .inbox import prune_forever
from .outbox import OutboxRelay
from .publisher import Publisher
from .router import Route
from .settings import BusSettings
from .settle import Settler
from .topology import bindings, declare_lane, history_arguments, unbind_stale


class Bus:
    def __init__(self, service: str, settings: BusSettings | None = None) -> None:
        self.service = service
        self.settings = settings or BusSettings()
        self.connection: AbstractRobustConnection | None = None
        self.immediate_connection: AbstractRobustConnection | None = None  # opened when the service has that lane
        self.publisher: Publisher | None = None
        self.consumers: list[LaneConsumer] = []
        self._pruning: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.connection = await nodes.connect_robust(
            self.settings.amqp_url, client_properties={"connection_name": self.service}
        )
        history = history_arguments(self.settings.history_max_age, self.settings.history_max_bytes)
        self.publisher = Publisher(self.connection, self.settings.publish_timeout_seconds, history)
        await self.publisher.open()

    @property
    def connected(self) -> bool:
        connections = [self.connection, *([self.immediate_connection] if self.immediate_connection else [])]
        return all(c is not None and not c.is_closed and c.connected.is_set() for c in connections)

    async def _lane_connection(self, lane: Lane) -> AbstractRobustConnection:
        assert self.connection is not None, "Bus.connect() first"
        if lane is not Lane.IMMEDIATE:
            return self.connection
        if self.immediate_connection is None:
            self.immediate_connection = await nodes.connect_robust(
                self.settings.amqp_url, client_properties={"connection_name": f"{self.service} immediate"}
            )
        return self.immediate_connection

    async def start_consumers(
        self, pool: asyncpg.Pool, routes: Mapping[str, Route], before_consuming: Callable[[], Awaitable[object]] | None = None
    ) -> list[LaneConsumer]:
        """Declare this service's lanes and consume each on its own channel, so lanes never wait on each other.
        `routes` are a Router's, bound to the service's dependencies (Router.bind). `before_consuming` runs
        once the lanes are declared and bound, before the first delivery (a late joiner's backfill)."""
        assert self.connection is not None, "Bus.connect() first"
        settler = Settler(self.connection, self.service, self.settings)
        await settler.open()
        lanes = bindings(routes)
        declared: list[AbstractRobustQueue] = []
        for lane, routing_keys in lanes.items():
            channel = await (await self._lane_connection(lane)).channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            queue = await declare_lane(
                channel, self.service, lane, routing_keys, self.settings.retry_delays_ms, self.settings.amqp_url
            )
            if not isinstance(queue, AbstractRobustQueue):  # never: a robust channel's queues are robust
                raise TypeError(f"{queue.name} was not declared on a robust channel")
            declared.append(queue)
        if before_consuming is not None:
            await before_consuming()
        for queue in declared:
            consumer = LaneConsumer(
                service=self.service, queue=queue, pool=pool, routes=routes, settler=settler, settings=self.settings
            )
            await consumer.start()
            self.consumers.append(consumer)
        await unbind_stale(self.connection, self.service, lanes)
        self._pruning = asyncio.create_task(prune_forever(pool, self.settings.inbox_retention_hours), name="inbox pruning")
        return self.consumers

    def relay(self, pool: asyncpg.Pool) -> OutboxRelay:
        assert self.publisher is not None, "Bus.connect() first"
        return OutboxRelay(pool, self.publisher, self.service, self.settings)

    async def stop_consumers(self) -> None:
        """Each consumer cancelled at the broker, the batch in hand finished; then inbox pruning stopped."""
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        if self._pruning is not None:
            self._pruning.cancel()
            await asyncio.wait([self._pruning])

    async def close(self) -> None:
        await self.stop_consumers()
        for connection in (self.immediate_connection, self.connection):
            if connection is not None:
                await connection.close()
