"""summary_p99_ms_at_1m_orders: four reads as a user makes them, through the gateway of an isolated stack, on an
empty shop and on one of a million orders, each read's p99 at scale beside its own on the empty shop.

The four: GET /api/analytics/summary and GET /api/analytics/products/{id} (an admin's), GET /api/orders (a
customer's own list, the default page) and GET /api/products/{id}. Two isolated stacks are set up alike through
their gateways: a customer, a product, and the customer's 60 orders of it, every other one paid (the empty
shop). Then a million orders are written in bulk by SQL straight into one stack's own databases, as the services'
handlers would have left them (bench/seed.py): two thousand of them the customer's, a tenth of them with a line
of the product, and 10 million inbox rows of their events. The reads' rounds alternate between the two stacks.
The figure is the read whose p99 grew the most: its p99 at scale, beside its own on the empty shop.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
import httpx
from shop_common import throwaway
from shop_common.shop_client import Customer, Shop

from . import seed
from .http import Sample, _request, open_loop, summary
from .report import Figure
from .stack import BenchStack

Progress = Callable[[str], None]
NAME = "summary_p99_ms_at_1m_orders"
READS = ("analytics_summary", "analytics_product", "customer_orders", "product_get")
EMPTY_SHOP_ORDERS = 60  # the customer's own, placed through the gateway (a full default page); every other one paid
GOAL = 2.0


async def reads_figure(
    orders: int, inbox_rows: int, rate: float, seconds: float, rounds: int, progress: Progress
) -> Figure:
    """Two isolated stacks set up alike, one of them seeded; the reads' rounds alternate between them (empty, full,
    full, empty, ...), so that a machine busier in one minute than the next weighs on both sides alike."""
    stacks = {"full": BenchStack(progress, name="benchreads"), "empty": BenchStack(progress, name="benchreadsempty")}
    failed = False
    try:
        shops: dict[str, Reader] = {}
        async with contextlib.AsyncExitStack() as clients:

            async def set_up(side: str) -> Reader:
                running = await asyncio.to_thread(stacks[side].start)
                limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
                client = await clients.enter_async_context(
                    httpx.AsyncClient(base_url=running.gateway, timeout=60, limits=limits)
                )
                shop = Shop(client, running)
                return Reader(shop, *await empty_shop(shop, stacks[side], progress))

            # The stack to seed first, alone: the other one's connections would only crowd the server meanwhile
            # (PostgreSQL's default of 100 connections is shared by two stacks and the seeding's nine).
            full = shops["full"] = await set_up("full")
            plan = seed.Plan(
                orders=orders, inbox_rows=inbox_rows, customer_id=full.customer.id, customer_email=full.customer.email,
                product_id=full.product["id"], product_price=Decimal(full.product["price"]),
            )
            progress(f"seeding {orders:,} orders and {inbox_rows:,} inbox rows into its databases")
            seeded = await seed.seed(plan, {s: database_url(stacks["full"], s) for s in seed.DATABASES}, progress)
            progress(f"  seeded in {seeded['seconds']:.0f}s ({seeded['vacuum_checkpoint_seconds']:.0f}s of it VACUUM ANALYZE"
                     " and CHECKPOINT)")
            shops["empty"] = await set_up("empty")
            checks = {}
            for side, reader in shops.items():
                await stacks[side].quiet()
                checks[side] = await exact(reader, stacks[side])
            progress(f"  figures exact against the orders database: empty {checks['empty']['exact']},"
                     f" full {checks['full']['exact']}")

            progress(f"the four reads, {rate:g} requests/s for {seconds:g}s a round, {rounds} rounds on each shop")
            samples: dict[str, list[dict[str, dict]]] = {"empty": [], "full": []}
            for side in ("empty", "full"):
                await shops[side].log_in()
                await shops[side].reads(rate, 3)  # warm-up: connections, statement caches
            for i in range(rounds):
                for side in (("empty", "full") if i % 2 == 0 else ("full", "empty")):
                    await shops[side].log_in()  # tokens live 15 minutes
                    samples[side].append(await shops[side].reads(rate, seconds))
                    progress(f"  {side:5} p99 " + ", ".join(f"{r} {samples[side][-1][r]['p99_ms']} ms" for r in READS))
    except Exception as exc:  # noqa: BLE001 - report that it was not measured, and why
        failed = True
        progress(f"{NAME} stopped: {type(exc).__name__}: {exc}; the stacks' logs stay in"
                 f" {', '.join(str(s.folder) for s in stacks.values())}")
        return Figure.not_measured(NAME, exc)
    finally:
        progress("stopping the two reads stacks")
        for stack in stacks.values():
            await asyncio.to_thread(stack.stop, failed)

    empty, full_ = median_rounds(samples["empty"]), median_rounds(samples["full"])
    per_read = {}
    for read in READS:
        before, after = empty[read]["p99_ms"], full_[read]["p99_ms"]
        per_read[read] = {
            "p99_ms_empty": before, "p99_ms_full": after,
            "ratio": round(after / before, 2) if before and after else None,
            "empty": empty[read], "full": full_[read],
        }
    errors = sum(empty[r]["errors"] + full_[r]["errors"] for r in READS)
    worst = max(READS, key=lambda r: per_read[r]["ratio"] if per_read[r]["ratio"] is not None else float("inf"))
    ratio = per_read[worst]["ratio"]
    exact_both = checks["empty"]["exact"] and checks["full"]["exact"]
    met = all(per_read[r]["ratio"] is not None and per_read[r]["ratio"] <= GOAL for r in READS) and exact_both and not errors
    return Figure(
        NAME, per_read[worst]["p99_ms_full"], "ms", per_read[worst]["p99_ms_empty"], ratio,
        f"<= {GOAL:g}x each, figures exact", met,
        f"the worst of four reads: {worst}; "
        + ", ".join(f"{r} {per_read[r]['p99_ms_empty']}->{per_read[r]['p99_ms_full']} ms" for r in READS)
        + f"; {orders:,} orders, {inbox_rows:,} inbox rows seeded in {seeded['seconds']:.0f}s; {errors} errors",
        {"orders": orders, "inbox_rows": inbox_rows, "rate_per_s": rate, "seconds": seconds, "rounds": rounds,
         "worst": worst, "reads": per_read, "seeding": seeded, "checks": checks},
    )


def database_url(stack: BenchStack, service: str) -> str:
    return throwaway.with_database(throwaway.POSTGRES_URL, f"{stack.prefix}{service}")


async def empty_shop(shop: Shop, stack: BenchStack, progress: Progress) -> tuple[Customer, dict]:
    """The benchmark's customer and product, and the customer's orders of it, with one to three lines as the
    seeded ones have (two more products), every other one paid."""
    customer = await shop.customer("Reader")
    product = await shop.product(price="4.99", stock=10_000_000, threshold=0)
    others = [(await shop.product(price="2.50", stock=10_000_000, threshold=0))["id"] for _ in range(2)]
    ids = []
    for i in range(EMPTY_SHOP_ORDERS):
        placed = await shop.place(customer, (product["id"], 1), *((p, 1) for p in others[: i % 3]))
        assert placed.status_code == 201, placed.text
        ids.append(placed.json()["id"])
    for order_id in ids[::2]:
        await shop.status_becomes(customer, order_id, "confirmed", timeout=60)
        paid = await shop.pay(customer, order_id, "tok_visa")
        assert paid.status_code == 200, paid.text
    await stack.quiet()
    progress(f"set up a shop: a customer with {len(ids)} orders of one to three lines, {len(ids[::2])} paid")
    return customer, product


@dataclass
class Reader:
    """One stack's shop, its customer and product, and the four reads of them."""

    shop: Shop
    customer: Customer
    product: dict
    admin: dict[str, str] = field(default_factory=dict)

    async def log_in(self) -> None:
        logged_in = await self.shop.login(self.customer.email, self.customer.password)
        assert logged_in.status_code == 200, logged_in.text
        self.customer.token = logged_in.json()["access_token"]
        self.shop._admin = None
        self.admin = await self.shop.admin()

    def call(self, read: str) -> Awaitable[httpx.Response]:
        http, product_id = self.shop.http, self.product["id"]
        if read == "analytics_summary":
            return http.get("/api/analytics/summary", headers=self.admin)
        if read == "analytics_product":
            return http.get(f"/api/analytics/products/{product_id}", headers=self.admin)
        if read == "customer_orders":
            return http.get("/api/orders", headers=self.customer.auth)
        return http.get(f"/api/products/{product_id}")

    async def reads(self, rate: float, seconds: float) -> dict[str, dict]:
        """The four reads in turn at `rate` requests/s in all, open loop (bench/http.py): each read's summary."""

        async def send(i: int, due: float) -> Sample:
            read = READS[i % len(READS)]
            sample, _ = await _request(read, self.call(read), 200, due)
            return sample

        samples = await open_loop(rate, seconds, send)
        return {read: summary(samples, read) for read in READS}


def median_rounds(rounds: list[dict[str, dict]]) -> dict[str, dict]:
    """Per read, the round of the median p99 (a p99 of a few hundred requests is its few worst, which one pause
    of a process moves), with every round's p99 and the errors of all rounds."""
    chosen = {}
    for read in READS:
        per_round = [r[read] for r in rounds]
        ranked = sorted(per_round, key=lambda s: s["p99_ms"] if s["p99_ms"] is not None else float("inf"))
        chosen[read] = ranked[len(ranked) // 2] | {
            "errors": sum(s["errors"] for s in per_round),
            "first_errors": [e for s in per_round for e in s["first_errors"]][:5],
            "rounds_p99_ms": [s["p99_ms"] for s in per_round],
            "median_p50_ms": statistics.median(s["p50_ms"] for s in per_round if s["p50_ms"] is not None),
        }
    return chosen


async def exact(reader: Reader, stack: BenchStack) -> dict:
    """What analytics answers against the orders service's own rows: the summary's order counts and money, the
    product's units and revenue; and the customer's page: 50 of their own, the newest."""
    started = time.monotonic()
    await reader.log_in()
    shop, customer, product_id = reader.shop, reader.customer, reader.product["id"]
    answered = (await shop.http.get("/api/analytics/summary", headers=reader.admin)).json()
    figures = (await shop.http.get(f"/api/analytics/products/{product_id}", headers=reader.admin)).json()
    page = (await shop.http.get("/api/orders", headers=customer.auth)).json()
    conn = await asyncpg.connect(database_url(stack, "orders"))
    try:
        books = dict(await conn.fetchrow(
            "SELECT count(*) AS orders_created, count(payment_id) AS orders_paid,"
            " count(*) FILTER (WHERE status = 'rejected') AS orders_rejected,"
            " count(*) FILTER (WHERE status = 'cancelled') AS orders_cancelled,"
            " count(*) FILTER (WHERE status = 'refunded') AS refunds,"
            " count(*) FILTER (WHERE status IN ('shipped', 'delivered')) AS orders_shipped,"
            " sum(total)::text AS sales_total FROM orders"
        ))
        line = dict(await conn.fetchrow(
            "SELECT coalesce(sum(i.quantity) FILTER (WHERE o.status IN ('paid', 'shipped', 'delivered')), 0) AS units_sold,"
            " coalesce(sum(i.quantity * i.unit_price) FILTER (WHERE o.status IN ('paid', 'shipped', 'delivered')), 0)::text"
            "  AS revenue,"
            " coalesce(sum(i.quantity) FILTER (WHERE o.status = 'refunded'), 0) AS units_refunded"
            " FROM order_items AS i JOIN orders AS o ON o.id = i.order_id WHERE i.product_id = $1",
            product_id,
        ))
        newest = [r["id"] for r in await conn.fetch(
            "SELECT id FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT 50", customer.id
        )]
    finally:
        await conn.close()
    summary_exact = all(str(answered[k]) == str(v) for k, v in books.items())
    product_exact = all(str(figures[k]) == str(v) for k, v in line.items())
    page_exact = [o["id"] for o in page] == newest and all(o["user_id"] == customer.id for o in page)
    return {
        "exact": summary_exact and product_exact and page_exact,
        "summary": {"analytics": {k: answered[k] for k in books}, "orders_db": books, "exact": summary_exact},
        "product": {"analytics": figures, "orders_db": line, "exact": product_exact},
        "customer_page": {"orders": len(page), "newest_and_theirs": page_exact},
        "seconds": round(time.monotonic() - started, 1),
    }
