"""shop-events: list, show and replay parked messages on any service's queues."""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import typer

from . import parking

app = typer.Typer(help="Operate the shop's event bus.", no_args_is_help=True)
parked = typer.Typer(help="Messages parked in <service>.<lane>.dlq after their last attempt.", no_args_is_help=True)
app.add_typer(parked, name="parked")

AmqpUrl = typer.Option(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), help="Broker URL (AMQP_URL).")


async def _queues(amqp_url: str, queue: str | None) -> list[str]:
    if queue:
        return [queue if queue.endswith(".dlq") else f"{queue}.dlq"]
    connection = await parking.connect(amqp_url)
    try:
        return await parking.parking_queues(connection)
    finally:
        await connection.close()


@parked.command("list")
def list_(queue: str = typer.Argument(None, help="e.g. orders.background (default: every queue)"), amqp_url: str = AmqpUrl) -> None:
    """One line per parked message: queue, message id, event type, attempts, reason."""

    async def go() -> None:
        connection = await parking.connect(amqp_url)
        try:
            for name in await _queues(amqp_url, queue):
                for m in await parking.list_parked(connection, name):
                    typer.echo(f"{m.queue}\t{m.message_id}\t{m.event_type}\t{m.attempts}\t{m.parked_at}\t{m.reason}")
        finally:
            await connection.close()

    parking.run(go())


@parked.command("show")
def show(message_id: str, queue: str = typer.Option(None, help="limit the search to one queue"), amqp_url: str = AmqpUrl) -> None:
    """The whole parked message, headers and body, as JSON."""

    async def go() -> int:
        connection = await parking.connect(amqp_url)
        try:
            for name in await _queues(amqp_url, queue):
                for m in await parking.list_parked(connection, name):
                    if m.message_id == message_id:
                        typer.echo(json.dumps(asdict(m), indent=2))
                        return 0
        finally:
            await connection.close()
        typer.echo(f"no parked message {message_id}", err=True)
        return 1

    raise typer.Exit(parking.run(go()))


@parked.command("replay")
def replay(
    message_id: str = typer.Argument(None, help="one message id; omit it with --all"),
    all_: bool = typer.Option(False, "--all", help="replay every parked message"),
    queue: str = typer.Option(None, help="limit to one queue, e.g. orders.background"),
    amqp_url: str = AmqpUrl,
) -> None:
    """Send parked messages back to their work queue with their attempts reset."""
    if not message_id and not all_:
        raise typer.BadParameter("name a message id, or pass --all")

    async def go() -> int:
        connection = await parking.connect(amqp_url)
        try:
            return sum([await parking.replay(connection, name, message_id) for name in await _queues(amqp_url, queue)])
        finally:
            await connection.close()

    count = parking.run(go())
    typer.echo(f"replayed {count} message(s)")
    if message_id and count == 0:
        raise typer.Exit(1)


def main() -> None:
    app()
