"""The shop under abuse: a flood of wrong logins from one client address, and a ban behind a backlog. Both run
on one isolated stack whose gateway has the shipped limits (deploy/gateway/render.py's defaults; GATEWAY_*
in the environment try others, e.g. the 500/s that login had before its own limit).

login_flood_p99_vs_no_flood: light traffic of other clients, each from an address of its own (any of
127.0.0.0/8 is this machine, and nginx tells them apart by it): other customers logging in with their right
password, and GET /api/products/{id}, POST /api/orders and GET /api/auth/me. Its latency percentiles without a
flood (the baseline), then while bench/flood.py, a process of its own bound to another address, sends 200 wrong
logins a second, each for a new email; alternating rounds, median round.

ban_effect_p99_ms_under_backlog: from the ban's answer until both orders (GET /api/orders) and products (a
review of a product that does not exist: 404 while the token is good, 403 once it is refused) refuse the banned
user's token, polled every few milliseconds through the gateway. First with no backlog (the baseline); then with
`backlog` background events waiting in front of each of orders' and products' background consumers: those
consumers are paused (the benchmark holds a SHARE lock on the one table each backlog event writes: orders'
catalogue copy, products' reservations, so the consumer's batch waits at its first write as behind any slow
statement) while the events are published into their work queues, the bans are measured with the whole backlog
waiting, then the lock is let go and more bans are measured while the consumers drain it flat out. UserBanned
travels on the immediate lane: its own queue and consumer, so none of that backlog is in front of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import httpx
from shop_common import throwaway
from shop_common.isolated_stack import IsolatedStack
from shop_common.shop_client import Customer, Shop
from shop_events import nodes
from shop_events.catalogue import OrderCancelled, ProductUpdated
from shop_events.outbox import new_event
from shop_events.publisher import OutgoingEvent

from . import http
from .report import Figure, missing
from .stack import BenchStack

ROOT = Path(__file__).resolve().parents[1]
Progress = Callable[[str], None]

FLOOD_SOURCE = "127.0.0.2"  # the attacker's address
ROUTES_SOURCE = "127.0.0.3"  # the light traffic on other routes
KINDS = ("get_product", "post_order", "auth_me")
LOGIN_CUSTOMERS = 8  # other customers logging in, each from an address of its own: 127.0.0.10 ...
BAN_POLL = 0.005  # seconds between two checks of a banned token, per service
PREFETCH = 1024  # deliveries a paused consumer holds unacked (shop_events' prefetch): published on top of the backlog
NO_PRODUCT = 999_999_999  # a review of it is 404 to a good token, 403 to a banned one
BACKLOG_ORDERS = 10**12  # the order ids of the backlog's OrderCancelled: orders no one placed
BACKLOG_PRODUCTS = 10**12  # the product ids of its ProductUpdated: products no one sells


def gateway_limits() -> dict[str, str]:
    """The gateway's limits as shipped (render.py's defaults), unless the environment sets others."""
    sys.path.insert(0, str(ROOT / "deploy" / "gateway"))
    try:
        from render import DEFAULTS  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    names = ("GATEWAY_RATE_LIMIT", "GATEWAY_RATE_BURST", "GATEWAY_LOGIN_RATE_LIMIT", "GATEWAY_LOGIN_RATE_BURST")
    return {name: os.environ.get(name) or DEFAULTS[name] for name in names}


def client_from(gateway: str, address: str) -> httpx.AsyncClient:
    """A client whose connections leave from `address`, which the gateway takes for the client's address."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
    )
    return httpx.AsyncClient(base_url=gateway, transport=transport, timeout=60)


async def abuse_figures(
    rounds: int, seconds: float, flood_rate: float, login_rate: float, route_rate: float, bans: int, backlog: int,
    progress: Progress,
) -> list[Figure]:
    limits = gateway_limits()
    stack = BenchStack(progress, name="benchabuse", **limits)
    figures: list[Figure] = []
    failed = False
    try:
        running = await asyncio.to_thread(stack.start)
        progress(
            f"abuse stack: the gateway's limits {limits['GATEWAY_LOGIN_RATE_LIMIT']}/s (burst"
            f" {limits['GATEWAY_LOGIN_RATE_BURST']}) on login and register, {limits['GATEWAY_RATE_LIMIT']}/s (burst"
            f" {limits['GATEWAY_RATE_BURST']}) on the rest, per client address"
        )
        async with AsyncExitStack() as clients:
            main = await clients.enter_async_context(client_from(running.gateway, "127.0.0.1"))
            shop = Shop(main, running)
            figures.append(await login_flood(
                stack, running, shop, clients, rounds, seconds, flood_rate, login_rate, route_rate, limits, progress
            ))
            await stack.quiet(timeout=300)
            figures.append(await ban_under_backlog(stack, running, shop, clients, bans, backlog, progress))
    except Exception as exc:  # noqa: BLE001 - report what was measured; the missing figures say why
        failed = True
        progress(f"abuse figures stopped: {type(exc).__name__}: {exc}; the stack's logs stay in {stack.folder}")
        figures += missing(figures, ABUSE_FIGURES, exc)
    finally:
        progress("stopping the abuse stack")
        await asyncio.to_thread(stack.stop, failed)
    return figures


ABUSE_FIGURES = ["login_flood_p99_vs_no_flood", "ban_effect_p99_ms_under_backlog"]


# ---- a flood of wrong logins from one address ----


async def register(shop: Shop, name: str) -> Customer:
    """Shop.customer, tried again after a 429 (the stack's gateway has the shipped login limit)."""
    for _ in range(20):
        try:
            return await shop.customer(name)
        except AssertionError as exc:
            if "429" not in str(exc) and "too many" not in str(exc):
                raise
            await asyncio.sleep(1)
    raise RuntimeError(f"could not register {name}: the login limit kept refusing")


async def login_flood(
    stack: BenchStack, running: IsolatedStack, shop: Shop, clients: AsyncExitStack, rounds: int, seconds: float,
    flood_rate: float, login_rate: float, route_rate: float, limits: dict[str, str], progress: Progress,
) -> Figure:
    name = "login_flood_p99_vs_no_flood"
    products = [(await shop.product(price="4.99", stock=10_000_000, threshold=0))["id"] for _ in range(3)]
    login_clients = [
        await clients.enter_async_context(client_from(running.gateway, f"127.0.0.{10 + i}")) for i in range(LOGIN_CUSTOMERS)
    ]
    customers = [await register(Shop(c, running), f"Login {i}") for i, c in enumerate(login_clients)]
    routes = await clients.enter_async_context(client_from(running.gateway, ROUTES_SOURCE))
    buyer = await register(Shop(routes, running), "Routes")
    await stack.quiet()
    progress(f"set up {len(customers) + 1} customers (each its own address) and {len(products)} products")

    async def send_login(i: int, due: float) -> http.Sample:
        who = customers[i % len(customers)]
        call = login_clients[i % len(customers)].post("/api/auth/login", json={"email": who.email, "password": who.password})
        sample, _ = await http._request("login", call, 200, due)
        return sample

    async def send_route(i: int, due: float) -> http.Sample:
        kind, product = KINDS[i % len(KINDS)], products[(i // len(KINDS)) % len(products)]
        if kind == "get_product":
            call, expect = routes.get(f"/api/products/{product}"), 200
        elif kind == "post_order":
            call, expect = routes.post("/api/orders", json=http.order_body((product, 1)), headers=buyer.auth), 201
        else:
            call, expect = routes.get("/api/auth/me", headers=buyer.auth), 200
        sample, _ = await http._request(kind, call, expect, due)
        return sample

    async def light() -> list[http.Sample]:
        logins, others = await asyncio.gather(
            http.open_loop(login_rate, seconds, send_login), http.open_loop(route_rate, seconds, send_route)
        )
        return logins + others

    async def flooded() -> tuple[list[http.Sample], dict]:
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.flood", "127.0.0.1", str(running.gateway_port), "--source", FLOOD_SOURCE,
            "--rate", f"{flood_rate:g}", "--seconds", f"{seconds + 2:g}",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1)  # the flood is on before the measured traffic starts, and goes on after it ends
        samples = await light()
        out, _ = await flood.communicate()
        if flood.returncode != 0 or not out.strip():
            raise RuntimeError(f"bench.flood failed ({flood.returncode})")
        return samples, json.loads(out.decode().strip().splitlines()[-1])

    measured = []
    for r in range(rounds):
        await stack.quiet()
        progress(
            f"round {r + 1}/{rounds}: other customers' logins at {login_rate:g}/s from {len(customers)} addresses,"
            f" GET product / POST order / GET me at {route_rate:g}/s, {seconds:g}s without a flood"
        )
        calm = await light()
        await stack.quiet()
        progress(f"  the same during {flood_rate:g} wrong logins/s from {FLOOD_SOURCE}")
        during, flood = await flooded()
        kinds = {}
        for kind in ("login", *KINDS):
            before, now = http.summary(calm, kind), http.summary(during, kind)
            ratio = now["p99_ms"] / before["p99_ms"] if now["p99_ms"] and before["p99_ms"] else None
            kinds[kind] = {"ratio": round(ratio, 3) if ratio else None, "flood": now, "no_flood": before}
        worst = max(kinds, key=lambda k: kinds[k]["ratio"] if kinds[k]["ratio"] is not None else float("inf"))
        errors = sum(k["flood"]["errors"] + k["no_flood"]["errors"] for k in kinds.values())
        measured.append({"worst": worst, "ratio": kinds[worst]["ratio"], "errors": errors, "kinds": kinds, "flood": flood})
        progress(
            "  p99 without / during the flood: "
            + ", ".join(f"{k} {v['no_flood']['p99_ms']} / {v['flood']['p99_ms']} ms" for k, v in kinds.items())
            + f"; {errors} errors; the flood's answers {flood['answers']} ({flood['achieved_per_s']}/s sent)"
        )

    middle = sorted(measured, key=lambda m: m["ratio"] if m["ratio"] is not None else float("inf"))[len(measured) // 2]
    worst = middle["worst"]
    value, baseline = middle["kinds"][worst]["flood"]["p99_ms"], middle["kinds"][worst]["no_flood"]["p99_ms"]
    errors = sum(m["errors"] for m in measured)
    answers: dict[str, int] = {}
    for m in measured:
        for k, n in m["flood"]["answers"].items():
            answers[k] = answers.get(k, 0) + n
    flood_kept = all((m["flood"]["achieved_per_s"] or 0) >= 0.9 * flood_rate for m in measured)
    ratio = middle["ratio"]
    return Figure(
        name, value, "ms", baseline, ratio, "<= 2x, 0 errors",
        ratio is not None and ratio <= 2 and errors == 0 and flood_kept,
        f"{flood_rate:g} wrong logins/s from one address (answers in all: {answers}); the worst of other customers'"
        f" logins ({login_rate:g}/s from {LOGIN_CUSTOMERS} addresses) and GET product / POST order / GET me"
        f" ({route_rate:g}/s): {worst} in the median of {rounds} rounds; {errors} errors in all"
        + ("" if flood_kept else "; the flood fell below 90% of its rate"),
        {"gateway_limits": limits, "flood_rate_per_s": flood_rate, "login_rate_per_s": login_rate,
         "route_rate_per_s": route_rate, "seconds": seconds, "flood_answers": answers, "rounds": measured},
    )


# ---- a ban behind a backlog ----


@dataclass
class Ban:
    ms: float | None  # from the ban's answer until both services refused the token
    orders_ms: float | None
    products_ms: float | None
    waiting: dict[str, int]  # ready messages in each background work queue just before the ban
    error: str = ""
    # how long the poll that saw the 403 took: the part of the figure that is the service answering HTTP
    orders_last_poll_ms: float | None = None
    products_last_poll_ms: float | None = None
    # from the start of the ban's transaction in auth to that of the UserBanned handler's in each service
    orders_handler_started_ms: float | None = None
    products_handler_started_ms: float | None = None


async def ban_under_backlog(
    stack: BenchStack, running: IsolatedStack, shop: Shop, clients: AsyncExitStack, bans: int, backlog: int,
    progress: Progress,
) -> Figure:
    name = "ban_effect_p99_ms_under_backlog"
    admin = await shop.admin()
    product = await shop.product(price="3.00", stock=1000, threshold=0)
    progress(f"ban under a backlog: registering {3 * bans} customers to ban")
    sources = [await clients.enter_async_context(client_from(running.gateway, f"127.0.1.{1 + i}")) for i in range(30)]
    gate = asyncio.Semaphore(4)

    async def one(i: int) -> tuple[Customer, httpx.AsyncClient]:
        async with gate:
            client = sources[i % len(sources)]
            return await register(Shop(client, running), f"Banned {i}"), client

    people = await asyncio.gather(*(one(i) for i in range(3 * bans)))
    await stack.quiet()

    connection = await nodes.connect(running.amqp_url)
    orders_db = await asyncpg.connect(throwaway.with_database(throwaway.POSTGRES_URL, f"{stack.prefix}orders"))
    products_db = await asyncpg.connect(throwaway.with_database(throwaway.POSTGRES_URL, f"{stack.prefix}products"))
    try:
        depth_channel = await connection.channel()

        async def waiting() -> dict[str, int]:
            counts = {}
            for service in ("orders", "products"):
                queue = await depth_channel.declare_queue(f"{service}.background", passive=True)
                counts[service] = queue.declaration_result.message_count
            return counts

        async def ban(who: Customer, client: httpx.AsyncClient) -> Ban:
            before = await waiting()
            answer = await main_post(shop, f"/api/auth/users/{who.id}/ban", admin)
            answered = time.monotonic()
            if answer.status_code != 200:
                return Ban(None, None, None, before, f"ban: {answer.status_code} {answer.text[:100]}")

            last_poll: dict[int, float] = {}

            async def refused(call: Callable[[], Awaitable[httpx.Response]], good: int) -> float:
                while True:
                    sent = time.monotonic()
                    response = await call()
                    if response.status_code == 403:
                        last_poll[good] = (time.monotonic() - sent) * 1000
                        return (time.monotonic() - answered) * 1000
                    if response.status_code != good:
                        raise RuntimeError(f"{response.status_code} {response.text[:100]}")
                    if time.monotonic() - answered > 10:
                        raise TimeoutError("still accepted 10 s after the ban")
                    await asyncio.sleep(BAN_POLL)

            try:
                orders_ms, products_ms = await asyncio.gather(
                    refused(lambda: client.get("/api/orders", params={"limit": 1}, headers=who.auth), 200),
                    refused(lambda: client.post(
                        f"/api/products/{NO_PRODUCT}/reviews", json={"rating": 1, "comment": "x"}, headers=who.auth
                    ), 404),
                )
            except (RuntimeError, TimeoutError, httpx.HTTPError) as exc:
                return Ban(None, None, None, before, f"{type(exc).__name__}: {exc}")
            return Ban(round(max(orders_ms, products_ms), 1), round(orders_ms, 1), round(products_ms, 1), before,
                       orders_last_poll_ms=round(last_poll[200], 1), products_last_poll_ms=round(last_poll[404], 1))

        async def phase(label: str, people: list[tuple[Customer, httpx.AsyncClient]]) -> list[Ban]:
            done = []
            for who, client in people:
                done.append(await ban(who, client))
                await asyncio.sleep(0.05)
            good = [b.ms for b in done if b.ms is not None]
            depth = [min(b.waiting.values()) for b in done]
            progress(
                f"  {label}: {len(good)}/{len(done)} bans took effect, p50 {http.percentile(good, 50) if good else None} ms,"
                f" max {max(good) if good else None} ms; waiting in each background queue {max(depth)} .. {min(depth)}"
                + "".join(f"; {b.error}" for b in done if b.error)
            )
            return done

        progress(f"  {bans} bans with no backlog (the baseline), one after another")
        calm = await phase("no backlog", people[:bans])

        progress(f"  pausing orders' and products' background consumers; {backlog:,} + {PREFETCH} events into each queue")
        orders_lock, products_lock = orders_db.transaction(), products_db.transaction()
        await orders_lock.start()
        await products_lock.start()
        try:
            await orders_db.execute("LOCK TABLE catalogue IN SHARE MODE")
            await products_db.execute("LOCK TABLE reservations IN SHARE MODE")
            published = await publish_backlog(connection, product, backlog + PREFETCH, progress)
            started = time.monotonic()
            while min((await waiting()).values()) < backlog:
                if time.monotonic() - started > 60:
                    raise RuntimeError(f"the backlog did not build up: {await waiting()} waiting")
                await asyncio.sleep(0.2)
            progress(f"  {bans} bans with the consumers paused behind the backlog")
            paused = await phase("paused backlog", people[bans:2 * bans])
        finally:
            await orders_lock.rollback()
            await products_lock.rollback()
        progress(f"  {bans} bans while the consumers drain it")
        drain_started = time.monotonic()
        draining = await phase("draining backlog", people[2 * bans:])
        await stack.quiet(timeout=600)
        drained_s = time.monotonic() - drain_started
        handled = await products_db.fetchval("SELECT count(*) FROM reservations WHERE reason = 'bench backlog'")
        # Where the time went, by the database server's one clock: from the ban's transaction in auth to the start of
        # the UserBanned handler's transaction in orders and in products (relay, broker, consumer).
        ids = [who.id for who, _ in people]
        auth_db = await asyncpg.connect(throwaway.with_database(throwaway.POSTGRES_URL, f"{stack.prefix}auth"))
        try:
            banned = {r["id"]: r["banned_at"] for r in await auth_db.fetch(
                "SELECT id, banned_at FROM users WHERE id = ANY($1::bigint[])", ids)}
        finally:
            await auth_db.close()
        started: dict[str, dict[int, float]] = {}
        for service, conn in (("orders", orders_db), ("products", products_db)):
            rows = await conn.fetch("SELECT user_id, banned_at FROM banned_users WHERE user_id = ANY($1::bigint[])", ids)
            started[service] = {
                r["user_id"]: round((r["banned_at"] - banned[r["user_id"]]).total_seconds() * 1000, 1)
                for r in rows if banned.get(r["user_id"])
            }
        for done, (who, _) in zip(calm + paused + draining, people, strict=True):
            done.orders_handler_started_ms = started["orders"].get(who.id)
            done.products_handler_started_ms = started["products"].get(who.id)
        progress(f"  the backlog drained in {drained_s:.1f}s; products recorded {handled:,} of its {published:,} events")
    finally:
        await connection.close()
        await orders_db.close()
        await products_db.close()

    under = paused + draining
    good_under, good_calm = [b.ms for b in under if b.ms is not None], [b.ms for b in calm if b.ms is not None]
    errors = [b.error for b in calm + under if b.error]
    value = http.percentile(good_under, 99) if good_under else None
    baseline = http.percentile(good_calm, 99) if good_calm else None
    paused_waiting = min(min(b.waiting.values()) for b in paused)
    draining_waiting = [min(b.waiting.values()) for b in draining]

    def summary(done: list[Ban]) -> dict:
        ms = [b.ms for b in done if b.ms is not None]
        return {
            "bans": len(done), "p50_ms": http.percentile(ms, 50) if ms else None,
            "p99_ms": http.percentile(ms, 99) if ms else None, "max_ms": max(ms) if ms else None,
            "orders_p99_ms": http.percentile([b.orders_ms for b in done if b.orders_ms], 99) if ms else None,
            "products_p99_ms": http.percentile([b.products_ms for b in done if b.products_ms], 99) if ms else None,
            "waiting_min": min(min(b.waiting.values()) for b in done), "waiting_max": max(min(b.waiting.values()) for b in done),
            "each": [vars(b) for b in done],
        }

    exact = handled == published
    return Figure(
        name, value, "ms", baseline, value / baseline if value and baseline else None,
        f"<= 100 ms, {backlog:,} waiting",
        value is not None and value <= 100 and not errors and paused_waiting >= backlog and exact,
        f"{len(under)} bans: {bans} with the consumers paused and at least {paused_waiting:,} events waiting in each of"
        f" orders' and products' background queues, {bans} while they drained it ({max(draining_waiting):,} down to"
        f" {min(draining_waiting):,} waiting; drained in {drained_s:.0f}s); p50 {median(good_under)} ms"
        f" (no backlog: p50 {median(good_calm)} ms); polled every {BAN_POLL * 1000:g} ms"
        + (f"; {len(errors)} failed: {errors[:2]}" if errors else "")
        + ("" if exact else f"; products recorded {handled} of the {published} backlog events"),
        {"backlog": backlog, "published_per_queue": published, "poll_ms": BAN_POLL * 1000, "drained_seconds": round(drained_s, 1),
         "no_backlog": summary(calm), "paused": summary(paused), "draining": summary(draining)},
    )


def median(values: list[float]) -> float | None:
    return http.percentile(values, 50) if values else None


async def main_post(shop: Shop, path: str, headers: dict[str, str]) -> httpx.Response:
    return await shop.http.post(path, json={"reason": "bench"}, headers=headers)


async def publish_backlog(connection: aio_pika.abc.AbstractConnection, product: dict, n: int, progress: Progress) -> int:
    """n background events straight into each of orders.background and products.background (through each
    service's settle exchange, where its work queues are bound by name: no other service gets them): orders a
    ProductUpdated of a product no one sells (a row of its catalogue copy written), products an OrderCancelled
    of an order no one placed (recorded as cancelled before its reservation). Each its own event id and row;
    confirmed, 1024 in flight."""
    update = new_event(ProductUpdated(
        product_id=BACKLOG_PRODUCTS, name=product["name"], price=product["price"], stock=product["stock"]
    ), "bench-backlog")
    cancel = new_event(OrderCancelled(order_id=BACKLOG_ORDERS, user_id=1, items=[], reason="bench backlog"), "bench-backlog")

    def copy(template: OutgoingEvent, i: int) -> aio_pika.Message:
        event_id = str(uuid.uuid4())
        body = template.body.replace(template.event_id.encode(), event_id.encode())
        if template is cancel:
            body = body.replace(b'"order_id":%d,' % BACKLOG_ORDERS, b'"order_id":%d,' % (BACKLOG_ORDERS + i))
        else:  # a product of its own each: a batch (512) writes as many rows, not one row over and over
            body = body.replace(b'"product_id":%d,' % BACKLOG_PRODUCTS, b'"product_id":%d,' % (BACKLOG_PRODUCTS + i))
        return dataclasses.replace(template, event_id=event_id, body=body).message()

    channel = await connection.channel(publisher_confirms=True)
    window = asyncio.Semaphore(1024)
    started = time.monotonic()
    try:
        exchanges = {s: await channel.get_exchange(f"{s}.settle", ensure=False) for s in ("orders", "products")}

        async def one(service: str, message: aio_pika.Message) -> None:
            try:
                await exchanges[service].publish(message, f"{service}.background")
            finally:
                window.release()

        tasks = []
        for i in range(n):
            for service, template in (("orders", update), ("products", cancel)):
                await window.acquire()
                tasks.append(asyncio.create_task(one(service, copy(template, i))))
            if i and i % 10_000 == 0:
                progress(f"    {i:,} of {n:,} published into each")
        await asyncio.gather(*tasks)
    finally:
        await channel.close()
    progress(f"    {n:,} into each in {time.monotonic() - started:.1f}s")
    return n
