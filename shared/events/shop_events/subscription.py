"""A work queue's deliveries, taken straight off the channel underneath aio-pika's robust channel.

aio-pika's own consume wraps every delivery in an IncomingMessage and runs the callback in a task of its
own; at a few thousand events a second that was a sixth of the consumer's time, more than its database
work. So the consumer is registered on the underlying aiormq channel, and the deliveries are kept as
aiormq gives them (an IncomingMessage is made only for the rare one that is retried or parked). What
aio-pika would do for a consumer it tracks is done here: consume again on every channel the robust
channel reopens (after a broker restart or a channel error), and after the broker cancels the consumer
(its queue was deleted: the consume that follows fails, the channel reopens and declares the queue again).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustQueue
from aiormq.abc import DeliveredMessage, FieldTable

log = logging.getLogger("shop_events.subscription")

RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # between tries to consume again after a cancel or a failed consume


class Subscription:
    def __init__(
        self,
        queue: AbstractRobustQueue,
        on_delivery: Callable[[DeliveredMessage], Coroutine[Any, Any, None]],
        arguments: Callable[[], FieldTable] | None = None,
    ) -> None:
        self._queue = queue
        # Asked at every consume, the first and each one on a reopened channel: a stream reader resumes from
        # where it got to, not from the offset it first named (aio-pika would repeat the first arguments).
        self._arguments = arguments
        self._channel: AbstractRobustChannel = queue.channel  # type: ignore[assignment]
        self._on_delivery = on_delivery
        self._tag = f"{queue.name}.{uuid.uuid4().hex[:12]}"
        self._retrying: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        self._channel.reopen_callbacks.add(self._on_reopen)
        await self._consume()

    async def cancel(self) -> None:
        """basic.cancel: the broker sends no more; what it sent stays ours to settle. Then stop()."""
        self.stop()
        with contextlib.suppress(Exception):  # a channel already gone has no consumer left to cancel
            channel = await self._channel.get_underlay_channel()
            await channel.basic_cancel(self._tag)

    def stop(self) -> None:
        """Consume no more on reopened channels (the connection is closing, taking the consumer with it)."""
        self._stopped = True
        self._channel.reopen_callbacks.discard(self._on_reopen)
        if self._retrying:
            self._retrying.cancel()

    async def _consume(self) -> None:
        channel = await self._channel.get_underlay_channel()
        if isinstance(channel, aiormq.Channel) and self._tag in channel.consumers:  # (it always is one)
            return  # already consuming on this channel
        channel.on_consumer_cancel_callbacks.add(self._on_cancel)
        arguments = self._arguments() if self._arguments is not None else None
        await channel.basic_consume(self._queue.name, self._on_delivery, consumer_tag=self._tag, arguments=arguments)

    async def _on_reopen(self, _channel: object) -> None:
        try:
            await self._consume()
        except Exception as exc:  # noqa: BLE001 - whatever failed, consuming is tried again later
            log.warning("could not consume on the reopened channel", extra={"queue": self._queue.name, "error": repr(exc)})
            self._retry_later()

    def _on_cancel(self, frame: aiormq.spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag and not self._stopped:
            log.warning("the broker cancelled the consumer; consuming again", extra={"queue": self._queue.name})
            self._retry_later()

    def _retry_later(self) -> None:
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._consume_again(), name=f"consume again {self._queue.name}")

    async def _consume_again(self) -> None:
        # Not tenacity: the pause comes before the first try, and the subscription's stop ends it, neither its way.
        for attempt in itertools.count():
            await asyncio.sleep(RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)])
            if self._stopped:
                return
            try:
                await self._consume()
                return
            except Exception as exc:  # noqa: BLE001 - a closed channel reopens on its own and calls _on_reopen
                log.warning("could not consume again, retrying", extra={"queue": self._queue.name, "error": repr(exc)})


def message_id(delivery: DeliveredMessage) -> str | None:
    return delivery.header.properties.message_id


def incoming(delivery: DeliveredMessage) -> aio_pika.IncomingMessage:
    """The aio-pika view of a delivery (headers, properties), for retrying or parking it."""
    return aio_pika.IncomingMessage(delivery, no_ack=False)
