"""make bench: each figure of contract.md section 4 beside its baseline, measured in this one run."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import asyncpg
import typer
from shop_common import throwaway

from . import bus
from .report import Figure, table, write

app = typer.Typer(add_completion=False)
HERE = Path(__file__).parent
STARTED = time.monotonic()


def progress(line: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {line}", file=sys.stderr, flush=True)


def ratio_figure(name: str, measured: dict, goal: float, unit_goal: str) -> Figure:
    ratio = measured["value"] / measured["baseline"]
    return Figure(name, measured["value"], measured["unit"], measured["baseline"], ratio, f">= {goal}x", ratio >= goal, unit_goal)


async def reset_analytics(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'")
        await conn.execute("TRUNCATE " + ", ".join(f'"{t["tablename"]}"' for t in tables))


async def reset_products(pool: asyncpg.Pool) -> None:
    """Empty inbox and reservations, 50 products with more stock than the run can take."""
    await reset_analytics(pool)
    async with pool.acquire() as conn:
        await conn.executemany(
            "INSERT INTO products (id, name, price, stock) VALUES ($1, $2, 10.00, 100000000)",
            [(i, f"bench product {i}") for i in range(1, 51)],
        )


async def measure(events: int, rounds: int) -> list[Figure]:
    figures: list[Figure] = []
    vhost = throwaway.new_name()
    amqp_url = throwaway.create_vhost(vhost)
    made: list[str] = []

    async def database() -> str:
        made.append(throwaway.new_name())
        return await throwaway.create_database(made[-1])

    try:
        progress(f"outbox relay vs raw publish, {events} events x {rounds} rounds")
        relay = await bus.relay_figure(amqp_url, await database(), events, rounds, progress)
        figures.append(ratio_figure("relay_vs_raw_publish", relay, 0.9, ""))

        import analytics.handlers
        import analytics.main
        import products.handlers
        import products.main

        progress(f"consumers vs raw consume, {events} OrderCreated x {rounds} rounds")
        for service, module, handlers, prepare, name in [
            ("analytics", analytics.main, analytics.handlers.HANDLERS, reset_analytics, "consumer_vs_raw_consume"),
            ("products", products.main, products.handlers.HANDLERS, reset_products, "consumer_vs_raw_consume_products"),
        ]:
            measured = await bus.consumer_figure(
                amqp_url, await database(), service=service,
                handlers={"OrderCreated": handlers["OrderCreated"]},
                migrations=Path(module.__file__).with_name("migrations"), prepare=prepare,
                n=events, rounds=rounds, progress=progress,
            )
            figures.append(ratio_figure(name, measured, 1.0, ""))
    finally:
        throwaway.delete_vhost(vhost)
        for name in made:
            await throwaway.drop_database(name)
    return figures


@app.command()
def main(
    events: int = typer.Option(10_000, help="events per bus round"),
    rounds: int = typer.Option(3, help="alternating rounds per bus figure (the median is reported)"),
) -> None:
    figures = asyncio.run(measure(events, rounds))
    print(table(figures))
    write(figures, HERE)
    progress(f"wrote {HERE / 'results.json'} and {HERE / 'results.png'}")


if __name__ == "__main__":
    app()
