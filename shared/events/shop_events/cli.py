"""shop-events: list, count, show, replay and discard parked messages on any service's queues; rebuild a
service's read model from the history stream.

Listing, counting and showing only read the parking streams: they change nothing, however often they run."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TypeVar

import aio_pika.exceptions
import typer
from aio_pika.abc import AbstractConnection

from . import history, parking
from .nodes import node_urls
from .registry import CONSUMERS
from .settings import amqp_url_from_env
from .topology import HISTORY

T = TypeVar("T")

app = typer.Typer(help="Operate the shop's event bus.", no_args_is_help=True)
parked = typer.Typer(help="Messages parked in <service>.<lane>.dlq after their last attempt.", no_args_is_help=True)
app.add_typer(parked, name="parked")
history_cli = typer.Typer(help="The history stream shop.history: every event, for rebuilds and late joiners.",
                          no_args_is_help=True)
app.add_typer(history_cli, name="history")

AmqpUrl = typer.Option(amqp_url_from_env(), help="Broker URL (AMQP_URL).")
EveryQueue = typer.Argument(None, help="e.g. orders.background (default: every queue)")


async def _queues(connection: AbstractConnection, queue: str | None) -> list[str]:
    if queue:
        return [queue if queue.endswith(".dlq") else f"{queue}.dlq"]
    return await parking.parking_queues(connection)


NO_LOCAL_REPLICA = "does not have a replica on the local node"  # RabbitMQ's words


def _on_each(amqp_url: str, queue: str | None, each: Callable[..., Awaitable[T]], *args: object) -> list[T]:
    """each(connection, parking queue, *args) on every queue named (or every one that exists), side by side;
    the answers in the order of the queues. A parking queue is a stream, read on a node that holds a replica
    of it: a cluster node just back from a restart may not yet, so then the next node of AMQP_URL is asked."""
    urls = node_urls(amqp_url)

    async def on(first: int) -> list[T]:
        connection = await parking.connect(",".join(urls[first:] + urls[:first]))
        try:
            return list(await asyncio.gather(*(each(connection, name, *args) for name in await _queues(connection, queue))))
        finally:
            await connection.close()

    async def go() -> list[T]:
        for first in range(len(urls)):
            try:
                return await on(first)
            except (aio_pika.exceptions.AMQPError, asyncio.CancelledError) as exc:
                if NO_LOCAL_REPLICA not in str(exc) or first == len(urls) - 1:
                    raise
        raise AssertionError("unreachable")

    return parking.run(go())


@parked.command("list")
def list_(queue: str = EveryQueue, amqp_url: str = AmqpUrl) -> None:
    """One line per parked message, oldest first: queue, message id, event type, attempts, parked at, reason."""
    for messages in _on_each(amqp_url, queue, parking.list_parked):
        for m in messages:
            typer.echo(f"{m.queue}\t{m.message_id}\t{m.event_type}\t{m.attempts}\t{m.parked_at}\t{m.reason}")


@parked.command("count")
def count(queue: str = EveryQueue, amqp_url: str = AmqpUrl) -> None:
    """One line per parking queue: its name and how many messages wait there (none are read)."""

    async def each(connection: AbstractConnection, name: str) -> str:
        return f"{name}\t{await parking.count_parked(connection, name)}"

    for line in _on_each(amqp_url, queue, each):
        typer.echo(line)


@parked.command("show")
def show(message_id: str, queue: str = typer.Option(None, help="limit the search to one queue"), amqp_url: str = AmqpUrl) -> None:
    """The whole parked message, headers and body, as JSON."""
    found = [m for messages in _on_each(amqp_url, queue, parking.list_parked) for m in messages if m.message_id == message_id]
    for m in found:
        typer.echo(json.dumps(asdict(m), indent=2))
    if not found:
        typer.echo(f"no parked message {message_id}", err=True)
        raise typer.Exit(1)


def _settle_command(verb: str, action: Callable[..., Awaitable[int]], message_id: str | None, all_: bool, queue: str | None,
                    offset: int | None, amqp_url: str) -> None:
    if not message_id and not all_:
        raise typer.BadParameter("name a message id, or pass --all")
    if offset is not None and not (message_id and queue):
        raise typer.BadParameter("--offset goes with a message id and its --queue")
    done = sum(_on_each(amqp_url, queue, action, message_id, offset))
    typer.echo(f"{verb} {done} message(s)")
    if message_id and done == 0:
        raise typer.Exit(1)


@parked.command("replay")
def replay(
    message_id: str = typer.Argument(None, help="one message id; omit it with --all"),
    all_: bool = typer.Option(False, "--all", help="replay every parked message"),
    queue: str = typer.Option(None, help="limit to one queue, e.g. orders.background"),
    offset: int = typer.Option(None, min=0, help="its offset in that queue (from `show`): read only that entry"),
    amqp_url: str = AmqpUrl,
) -> None:
    """Send parked messages back to their work queue with their attempts reset."""
    _settle_command("replayed", parking.replay, message_id, all_, queue, offset, amqp_url)


@parked.command("discard")
def discard(
    message_id: str = typer.Argument(None, help="one message id; omit it with --all"),
    all_: bool = typer.Option(False, "--all", help="discard every parked message"),
    queue: str = typer.Option(None, help="limit to one queue, e.g. orders.background"),
    offset: int = typer.Option(None, min=0, help="its offset in that queue (from `show`): read only that entry"),
    amqp_url: str = AmqpUrl,
) -> None:
    """Drop parked messages for good (they are no longer listed); a stream can't be purged."""
    _settle_command("discarded", parking.discard, message_id, all_, queue, offset, amqp_url)


@parked.command("upgrade")
def upgrade(queue: str = EveryQueue, amqp_url: str = AmqpUrl) -> None:
    """Make parking queues left as quorum queues by an older version streams, keeping their messages.
    Stop the services first."""
    moved = sum(_on_each(amqp_url, queue, parking.upgrade))
    typer.echo(f"upgraded; {moved} parked message(s) moved into streams")


@history_cli.command("rebuild")
def rebuild(service: str = typer.Argument(..., help="a service with a read model: " + ", ".join(CONSUMERS))) -> None:
    """Empty the service's read model and replay the history through its own handlers, then return (caught
    up; the live queue has the rest). A rebuild that was killed resumes where it had committed. Reads the
    service's own settings from the environment (its <SERVICE>_DATABASE_URL, AMQP_URL)."""
    if service not in CONSUMERS:
        raise typer.BadParameter(f"not a consuming service: {service}")
    app_ = importlib.import_module(f"{service}.main").create_app()

    def show(p: history.Progress) -> None:
        rate = p.replayed / p.seconds if p.seconds else 0.0
        typer.echo(f"{service}: offset {p.next_offset} of {p.end_offset + 1}, {p.replayed} events replayed ({rate:.0f}/s)")

    try:
        done: history.Progress = parking.run(app_.state.history_rebuild(on_progress=show))
    except LookupError as exc:  # a service without a read model
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{service}: rebuilt; {done.replayed} events replayed in {done.seconds:.1f}s,"
               f" caught up at offset {done.end_offset}")


@history_cli.command("status")
def history_status(amqp_url: str = AmqpUrl) -> None:
    """The stream's size (messages), its first offset and oldest event, and its last offset."""

    async def go() -> history.StreamState:
        connection = await parking.connect(amqp_url)
        try:
            return await history.stream_state(connection)
        finally:
            await connection.close()

    state = parking.run(go())
    offsets = f"{state.first_offset}..{state.last_offset}"
    typer.echo(f"{HISTORY}\t{state.messages} messages\toffsets {offsets}\toldest {state.oldest_at}")


def main() -> None:
    app()
