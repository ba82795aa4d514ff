"""Connecting to a broker cluster: AMQP_URL may list its nodes, comma-separated, and any node that answers
will do. aio-pika's robust connection retries one URL only (aio-pika issue 141), so the failover is ours:
a robust connection that moves to the next node after every attempt that failed and every connection lost.
Everything the robust connection restores on a new connection (channels, QoS, the bus's own consumers via
reopen callbacks) it restores the same way on whichever node answered."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

log = logging.getLogger("shop_events.nodes")


def node_urls(amqp_url: str) -> list[str]:
    """The nodes of `AMQP_URL`: one URL, or several separated by commas (spaces around them ignored)."""
    urls = [part.strip() for part in amqp_url.split(",") if part.strip()]
    if not urls:
        raise ValueError("AMQP_URL names no broker")
    return urls


class FailoverConnection(aio_pika.RobustConnection):
    """A robust connection over several nodes: each attempt after one that failed, or after the connection
    was lost, goes to the next node of the list, round and round, until one answers."""

    def __init__(self, nodes: list[str], first: int = 0, **kwargs: Any) -> None:
        self._nodes = [URL(node) for node in nodes]
        self._node = first % len(self._nodes)
        super().__init__(self._nodes[self._node], **kwargs)

    @property
    def node(self) -> str:
        """host:port of the node this connection is on, or is trying next."""
        return f"{self.url.host}:{self.url.port}"

    def _next_node(self) -> None:
        self._node = (self._node + 1) % len(self._nodes)
        self.url = self._nodes[self._node]

    # Called for a connection lost and for every attempt that failed to connect (aiormq closes the transport
    # it tried to make): in both cases the next attempt goes to the next node.
    async def _on_connection_close(self, closing: Any) -> None:
        if not (self.close_called or self.is_closed) and len(self._nodes) > 1:
            log.warning("no connection to the broker node; the next attempt goes to the next", extra={"node": self.node})
            self._next_node()
        await super()._on_connection_close(closing)


def cancelled_by_connection() -> bool:
    """Inside `except CancelledError`: whether aiormq cancelled what waited on a connection it gave up (missed
    heartbeats, a node cut off), rather than someone cancelling the running task itself."""
    task = asyncio.current_task()
    return task is not None and not task.cancelling()


async def connect_robust(amqp_url: str, **kwargs: Any) -> FailoverConnection:
    """A robust connection to the first node of `amqp_url` that answers; later it fails over by itself."""
    nodes = node_urls(amqp_url)
    for first in range(len(nodes)):
        connection = FailoverConnection(nodes, first, **kwargs)
        try:
            await connection.connect()
            return connection
        except CONNECTION_EXCEPTIONS as exc:
            await connection.close()
            if first == len(nodes) - 1:
                raise
            log.warning("broker node does not answer; trying the next", extra={"node": nodes[first], "error": repr(exc)})
    raise AssertionError("unreachable")


async def connect(amqp_url: str, **kwargs: Any) -> AbstractConnection:
    """A plain connection (a tool's, a test's) to the first node of `amqp_url` that answers."""
    nodes = node_urls(amqp_url)
    for n, url in enumerate(nodes):
        try:
            connection: AbstractConnection = await aio_pika.connect(url, **kwargs)
            return connection
        except CONNECTION_EXCEPTIONS as exc:
            if n == len(nodes) - 1:
                raise
            log.warning("broker node does not answer; trying the next", extra={"node": url, "error": repr(exc)})
    raise AssertionError("unreachable")
