"""HTTP figures through the gateway of an isolated stack: fixed-rate latency, order → confirmed, the slow mail
relay, and a drain of N orders with exact final counts.

Load is open-loop: request i is due at start + i/rate and is sent then whatever happened to the ones before,
and its latency counts from when it was due, so time spent queueing (in the client, the gateway or a service)
is in the figure instead of silently lowering the rate.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from shop_common.isolated_stack import IsolatedStack
from shop_common.shop_client import Customer, Shop

from .stack import BenchStack

Progress = Callable[[str], None]
FINAL = {"confirmed", "rejected"}


@dataclass
class Sample:
    kind: str
    seconds: float
    ok: bool
    detail: str = ""


@dataclass
class Catalogue:
    """What the benchmark set up: customers, products for the fixed-rate phases, and two for the drain."""

    customers: list[Customer]
    products: list[int]
    drain_customer: Customer
    scarce: int  # every drain order takes one; it holds fewer units than there are drain orders
    plenty: int  # every drain order takes one too
    scarce_stock: int
    plenty_stock: int


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(samples: list[Sample], kind: str) -> dict:
    mine = [s for s in samples if s.kind == kind]
    good = [s.seconds * 1000 for s in mine if s.ok]
    errors = [s.detail for s in mine if not s.ok]
    return {
        "requests": len(mine),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": round(percentile(good, 50), 2) if good else None,
        "p99_ms": round(percentile(good, 99), 2) if good else None,
        "max_ms": round(max(good), 2) if good else None,
    }


async def open_loop(rate: float, seconds: float, send: Callable[[int, float], Awaitable[Sample]]) -> list[Sample]:
    """send(i, due) is started at `due` = start + i/rate (time.monotonic()), whatever the earlier ones are doing.
    Waits for every answer."""
    start = time.monotonic() + 0.05
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        wait = due - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(send(i, due)))
    return list(await asyncio.gather(*tasks))


async def _request(
    kind: str, call: Awaitable[httpx.Response], expect: int, due: float
) -> tuple[Sample, httpx.Response | None]:
    """One call; its latency counts from `due`, when it should have been sent."""
    try:
        response = await call
    except httpx.HTTPError as exc:
        return Sample(kind, time.monotonic() - due, False, f"{type(exc).__name__}: {exc}"), None
    seconds = time.monotonic() - due
    if response.status_code != expect:
        return Sample(kind, seconds, False, f"{response.status_code} {response.text[:120]}"), response
    return Sample(kind, seconds, True), response


def order_body(*lines: tuple[int, int]) -> dict:
    return {"items": [{"product_id": p, "quantity": q} for p, q in lines]}


@asynccontextmanager
async def shop_on(
    stack: BenchStack, running: IsolatedStack, drain: int, progress: Progress
) -> AsyncIterator[tuple[Shop, Catalogue]]:
    """A client of the running stack's gateway, many connections wide, and the benchmark's customers and products."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=running.gateway, timeout=60, limits=limits) as client:
        shop = Shop(client, running)
        yield shop, await set_up(shop, stack, drain, progress)


async def set_up(shop: Shop, stack: BenchStack, drain: int, progress: Progress) -> Catalogue:
    customers = [await shop.customer(f"Bench {i}") for i in range(8)]
    drain_customer = await shop.customer("Drain")
    products = [(await shop.product(price="4.99", stock=10_000_000, threshold=0))["id"] for _ in range(5)]
    scarce_stock = drain * 4 // 5  # a fifth of the drain's orders find none left: they must end rejected
    plenty_stock = 10_000_000
    scarce = (await shop.product(price="2.50", stock=scarce_stock, threshold=0))["id"]
    plenty = (await shop.product(price="1.25", stock=plenty_stock, threshold=0))["id"]
    await stack.quiet()  # orders has every product in its catalogue copy once ProductCreated was handled
    progress(f"set up {len(customers) + 1} customers and {len(products) + 2} products")
    return Catalogue(customers, products, drain_customer, scarce, plenty, scarce_stock, plenty_stock)


async def mixed(shop: Shop, catalogue: Catalogue, rate: float, seconds: float, keyed: bool = False) -> list[Sample]:
    """GET /api/products/{id} and POST /api/orders, alternating, at `rate` requests per second in all; with
    `keyed`, each POST carries an Idempotency-Key (which the gateway may send again to another replica)."""
    http = shop.http
    customers, products = catalogue.customers, catalogue.products

    async def send(i: int, due: float) -> Sample:
        product = products[(i // 2) % len(products)]
        if i % 2 == 0:
            sample, _ = await _request("get_product", http.get(f"/api/products/{product}"), 200, due)
        else:
            who = customers[(i // 2) % len(customers)]
            headers = {**who.auth, "Idempotency-Key": uuid.uuid4().hex} if keyed else who.auth
            post = http.post("/api/orders", json=order_body((product, 1)), headers=headers)
            sample, _ = await _request("post_order", post, 201, due)
        return sample

    return await open_loop(rate, seconds, send)


async def confirmations(
    shop: Shop, catalogue: Catalogue, rate: float, seconds: float, poll: float = 0.01
) -> list[Sample]:
    """Orders at a fixed rate; for each, the time from its POST's answer until GET shows it confirmed."""
    http = shop.http
    customers, products = catalogue.customers, catalogue.products

    async def send(i: int, due: float) -> Sample:
        who = customers[i % len(customers)]
        post = http.post("/api/orders", json=order_body((products[i % len(products)], 1)), headers=who.auth)
        sample, response = await _request("post_order", post, 201, due)
        if not sample.ok:
            return Sample("confirmed", 0.0, False, f"POST: {sample.detail}")
        order_id = response.json()["id"]
        returned = time.monotonic()
        deadline = returned + 60
        while time.monotonic() < deadline:
            try:
                got = await http.get(f"/api/orders/{order_id}", headers=who.auth)
            except httpx.HTTPError as exc:
                return Sample("confirmed", 0.0, False, f"GET: {type(exc).__name__}")
            status = got.json().get("status") if got.status_code == 200 else None
            if status == "confirmed":
                return Sample("confirmed", time.monotonic() - returned, True)
            if got.status_code != 200 or status != "pending":
                return Sample("confirmed", 0.0, False, f"GET: {got.status_code} {got.text[:120]}")
            await asyncio.sleep(poll)
        return Sample("confirmed", 0.0, False, "not confirmed within 60 s")

    return await open_loop(rate, seconds, send)


@dataclass
class Drain:
    orders: int
    placed_seconds: float = 0.0
    final_seconds: float = 0.0
    post_errors: list[str] = field(default_factory=list)
    confirmed: int = 0
    rejected: int = 0
    pending: int = 0
    scarce_left: int | None = None
    plenty_left: int | None = None
    expected_confirmed: int = 0
    exact: bool = False


async def drain(
    shop: Shop, catalogue: Catalogue, n: int, concurrency: int, progress: Progress, timeout: float = 300
) -> Drain:
    """N orders as fast as the gateway takes them (`concurrency` clients, each posting as soon as it has its
    answer); then the time until every one is final, and the books: exactly as many confirmed as the scarce
    product had units, the rest rejected, and each product's stock down by exactly the confirmed orders."""
    http, who = shop.http, catalogue.drain_customer
    result = Drain(orders=n, expected_confirmed=min(n, catalogue.scarce_stock))
    body = order_body((catalogue.scarce, 1), (catalogue.plenty, 1))
    ids: list[int] = []
    queue = iter(range(n))
    started = time.monotonic()

    async def client() -> None:
        for _ in queue:
            try:
                response = await http.post("/api/orders", json=body, headers=who.auth)
            except httpx.HTTPError as exc:
                result.post_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code == 201:
                ids.append(response.json()["id"])
            else:
                result.post_errors.append(f"{response.status_code} {response.text[:120]}")

    async def report() -> None:
        while True:
            await asyncio.sleep(5)
            progress(f"  drain: {len(ids)}/{n} placed")

    reporter = asyncio.create_task(report())
    try:
        await asyncio.gather(*(client() for _ in range(concurrency)))
    finally:
        reporter.cancel()
    result.placed_seconds = time.monotonic() - started
    progress(f"  drain: {len(ids)} orders placed in {result.placed_seconds:.1f}s; waiting until every one is final")

    last_report = time.monotonic()
    statuses: dict[int, str] = {}
    while time.monotonic() - started < timeout:
        statuses = await _statuses_of(http, who, len(ids))
        done = sum(1 for i in ids if statuses.get(i) in FINAL)
        if done == len(ids):
            break
        if time.monotonic() - last_report > 5:
            progress(f"  drain: {done}/{len(ids)} final")
            last_report = time.monotonic()
        await asyncio.sleep(0.2)
    result.final_seconds = time.monotonic() - started
    result.confirmed = sum(1 for i in ids if statuses.get(i) == "confirmed")
    result.rejected = sum(1 for i in ids if statuses.get(i) == "rejected")
    result.pending = len(ids) - result.confirmed - result.rejected
    result.scarce_left = await shop.stock_of(catalogue.scarce)
    result.plenty_left = await shop.stock_of(catalogue.plenty)
    result.exact = (
        not result.post_errors
        and len(ids) == n
        and result.confirmed == result.expected_confirmed
        and result.confirmed + result.rejected == n
        and result.scarce_left == catalogue.scarce_stock - result.confirmed
        and result.plenty_left == catalogue.plenty_stock - result.confirmed
    )
    return result


async def _statuses_of(http: httpx.AsyncClient, who: Customer, count: int) -> dict[int, str]:
    """The customer's orders, 200 a page (the API's most), as {id: status}."""
    statuses: dict[int, str] = {}
    for offset in range(0, count, 200):
        response = await http.get("/api/orders", params={"limit": 200, "offset": offset}, headers=who.auth)
        response.raise_for_status()
        statuses.update((order["id"], order["status"]) for order in response.json())
    return statuses
