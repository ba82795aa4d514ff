"""What the clients do in one round, and the ledger of it: registrations, orders (each with an Idempotency-Key,
retried with the same key after a 5xx or a dropped connection, as a real client would), payments and reviews.
The books are computed from this ledger only, never from what the services say they did."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import httpx

# Where an order's life ends. A paid order ends there only if its client plans nothing more (Placed.settled).
FINAL = {"rejected", "cancelled", "refunded", "delivered"}
# The payment token each paying client will use, and the status it must end in once confirmed.
TOKENS = [("tok_visa", "paid")] * 15 + [("tok_insufficient_funds", "cancelled")] * 3 + [("tok_card_declined", "cancelled")] * 2
# What each order's client will do with it (issue 20's whole life): pay, pay and have the admin refund it, pay and
# have it shipped and delivered, cancel it at once (racing its reservation), cancel it once confirmed, or leave it
# unpaid for the payment deadline (ORDER_PAYMENT_TIMEOUT, short in the fault stack).
PLANS = ["pay"] * 60 + ["refund"] * 8 + ["ship"] * 8 + ["cancel_pending"] * 8 + ["cancel_confirmed"] * 8 + ["unpaid"] * 8
# pay_late pays at its deadline, refund_later is refunded by its fault (life.py's rounds)
PAYING = {"pay", "refund", "ship", "pay_late", "refund_later"}
ENDS_PAID = {"pay", "pay_late", "refund_later"}  # the plans with nothing to do once paid (refund_later: its fault acts)
RETRYABLE = {500, 502, 503, 504}


@dataclass
class Customer:
    id: int
    email: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Placed:
    id: int
    customer: Customer
    lines: list[tuple[int, int]]
    unit_prices: dict[int, Decimal]
    total: Decimal
    payment_token: str
    placed_at: float
    plan: str = "pay"
    status: str = "pending"
    reason: str | None = None
    final_at: float | None = None
    acting: bool = False  # a call of its client's is on its way
    answers: dict[str, int] = field(default_factory=dict)  # the last answer to each call: pay, cancel, refund, ...

    @property
    def expected_if_confirmed(self) -> str:
        return dict(TOKENS)[self.payment_token]

    @property
    def settled(self) -> bool:
        return self.status in FINAL or (self.status == "paid" and self.plan in ENDS_PAID)


@dataclass
class Ledger:
    round: str
    products: dict[int, int] = field(default_factory=dict)  # product id -> stock at creation
    thresholds: dict[int, int] = field(default_factory=dict)  # product id -> low-stock threshold it was given
    prices: dict[int, Decimal] = field(default_factory=dict)
    suppliers: dict[int, str] = field(default_factory=dict)
    customers: list[Customer] = field(default_factory=list)
    orders: dict[int, Placed] = field(default_factory=dict)
    reviews: set[tuple[int, int]] = field(default_factory=set)  # (customer id, product id), answered 201
    placed: int = 0


@dataclass
class Steady:
    """What Client.steady sent and what came back that a client would not expect."""

    sent: int = 0
    orders: int = 0
    seconds: float = 0.0
    unexpected: list[str] = field(default_factory=list)

    def describe(self, failed: int) -> str:
        return (f"{self.sent} requests in {self.seconds:.0f} s ({self.sent / max(self.seconds, 0.001):.0f}/s, "
                f"{self.orders} of them orders): {failed} 5xx or dropped, {len(self.unexpected)} unexpected answers")


class Client:
    """One round's clients, through the gateway only."""

    def __init__(self, gateway: str, admin_email: str, admin_password: str, seed: int) -> None:
        self.http = httpx.AsyncClient(
            base_url=gateway, timeout=30, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
        self.admin_login = (admin_email, admin_password)
        self.admin: dict[str, str] = {}
        self.random = random.Random(seed)
        self.ledger = Ledger(round=uuid.uuid4().hex[:8])
        self.placed_event = asyncio.Event()
        self.calls = 0
        self.surprises: list[str] = []  # answers a client would not expect, kept for the report
        self.failed_answers: list[str] = []  # every 5xx or dropped connection, before it was tried again

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, url: str, *, patience: float = 180, **kwargs: object) -> httpx.Response:
        """One request; a dropped connection or a 5xx (a service or server restarting) is tried again."""
        deadline = time.monotonic() + patience
        pause = 0.1
        while True:
            self.calls += 1
            try:
                response = await self.http.request(method, url, **kwargs)
                if response.status_code not in RETRYABLE:
                    return response
                problem = f"{response.status_code} {response.text[:200]}"
            except httpx.TransportError as exc:
                problem = repr(exc)
            self.failed_answers.append(f"{method} {url}: {problem}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {url} kept failing for {patience}s: {problem}")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 2.0)

    # ---- setting up ----

    async def login(self, email: str, password: str) -> str:
        response = await self.call("POST", "/api/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def log_admin_in(self) -> None:
        self.admin = {"Authorization": f"Bearer {await self.login(*self.admin_login)}"}

    async def setup(self, products: int, stock: int, customers: int) -> None:
        for n in range(products):
            supplier = f"supplier-{self.ledger.round}-{n}@example.com"
            price = Decimal(self.random.choice(["4.99", "10.00", "12.50", "19.99", "33.33"]))
            threshold = max(1, stock // 4)
            body = {
                "name": f"fault {self.ledger.round} {n}", "price": str(price), "stock": stock,
                "low_stock_threshold": threshold, "supplier_email": supplier,
            }
            response = await self.call("POST", "/api/products", json=body, headers=self.admin)
            assert response.status_code == 201, response.text
            product = response.json()["id"]
            self.ledger.products[product], self.ledger.prices[product], self.ledger.suppliers[product] = stock, price, supplier
            self.ledger.thresholds[product] = threshold
        await asyncio.gather(*(self.register() for _ in range(customers)))

    async def register(self) -> Customer:
        email, password = f"faults-{self.ledger.round}-{uuid.uuid4().hex[:10]}@example.com", "correct-horse-9"
        response = await self.call("POST", "/api/auth/register", json={"email": email, "password": password, "name": "Faye"})
        # 409: an earlier try was registered though its answer was lost.
        assert response.status_code in (201, 409), response.text
        customer = Customer(0, email, await self.login(email, password))
        me = await self.call("GET", "/api/auth/me", headers=customer.auth)
        customer.id = me.json()["id"]
        self.ledger.customers.append(customer)
        return customer

    # ---- placing, paying, reviewing ----

    async def place_orders(self, count: int, concurrency: int = 12) -> None:
        numbers = iter(range(count))

        async def worker() -> None:
            for n in numbers:
                if n % 10 == 9:  # registrations mixed into the stream
                    customer = await self.register()
                else:
                    customer = self.random.choice(self.ledger.customers)
                await self.place(customer)
                if n % 8 == 5:
                    await self.review(customer)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    async def place(self, customer: Customer, plan: str | None = None) -> Placed:
        products = self.random.sample(sorted(self.ledger.products), self.random.choice([1, 1, 2, 3]))
        lines = [(p, self.random.choice([1, 1, 2, 3])) for p in products]
        body = {"items": [{"product_id": p, "quantity": q} for p, q in lines]}
        headers = {**customer.auth, "Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + 60
        while True:
            response = await self.call("POST", "/api/orders", json=body, headers=headers)
            # Orders learns of a new product a moment after products made it: 422 until then.
            if response.status_code == 422 and "unknown product" in response.text and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                continue
            break
        assert response.status_code == 201, response.text
        order = response.json()
        if order["id"] in self.ledger.orders:  # an idempotent replay of an order we already hold
            return self.ledger.orders[order["id"]]
        plan = plan or self.random.choice(PLANS)
        placed = Placed(
            id=order["id"], customer=customer, lines=lines,
            unit_prices={i["product_id"]: Decimal(i["unit_price"]) for i in order["items"]},
            total=Decimal(order["total"]), payment_token=self.random.choice(TOKENS)[0] if plan == "pay" else "tok_visa",
            placed_at=time.monotonic(), plan=plan,
        )
        self.ledger.orders[placed.id] = placed
        self.ledger.placed += 1
        self.placed_event.set()
        if plan == "cancel_pending":  # at once: products may not have seen the order yet
            await self.act(placed, "cancel", customer.auth)
        return placed

    async def review(self, customer: Customer) -> None:
        product = self.random.choice(sorted(self.ledger.products))
        if (customer.id, product) in self.ledger.reviews:
            return
        comment = self.random.choice(["works as promised", "see www.example.com for a better one", "meh"])
        response = await self.call(
            "POST", f"/api/products/{product}/reviews",
            json={"rating": self.random.randint(1, 5), "comment": comment}, headers=customer.auth,
        )
        assert response.status_code in (201, 409), response.text  # 409: an earlier try went through
        self.ledger.reviews.add((customer.id, product))

    async def placed_at_least(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ledger.placed < count and time.monotonic() < deadline:
            self.placed_event.clear()
            try:
                await asyncio.wait_for(self.placed_event.wait(), max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                pass

    async def refresh_statuses(self) -> None:
        """Every order of this round as it is now, from the admin's list (newest first, paged)."""
        if not self.ledger.orders:
            return
        oldest = min(self.ledger.orders)
        offset = 0
        while True:
            response = await self.call("GET", "/api/orders", params={"limit": 200, "offset": offset}, headers=self.admin)
            assert response.status_code == 200, response.text
            page = response.json()
            for order in page:
                placed = self.ledger.orders.get(order["id"])
                if placed is not None and placed.status != order["status"]:
                    placed.status, placed.reason = order["status"], order["reason"]
                    if placed.settled and placed.final_at is None:
                        placed.final_at = time.monotonic()
            if len(page) < 200 or page[-1]["id"] <= oldest:
                return
            offset += 200

    async def settle_forever(self, pause: float = 0.3) -> None:
        """Does each order's client's next step once its status allows (pay, cancel, refund, ship, deliver);
        runs until cancelled."""
        acting: set[asyncio.Task] = set()
        gate = asyncio.Semaphore(8)
        while True:
            await self.refresh_statuses()
            for placed in list(self.ledger.orders.values()):
                step = self.next_step(placed)
                if step is not None and not placed.acting:
                    placed.acting = True
                    task = asyncio.create_task(self.guarded(placed, step, gate))
                    acting.add(task)
                    task.add_done_callback(acting.discard)
            await asyncio.sleep(pause)

    @staticmethod
    def next_step(placed: Placed) -> str | None:
        if placed.status == "confirmed":
            if placed.plan in PAYING and "pay" not in placed.answers:
                return "pay"
            if placed.plan == "cancel_confirmed" and "cancel" not in placed.answers:
                return "cancel"
        if placed.status == "paid" and placed.plan == "refund" and "refund" not in placed.answers:
            return "refund"
        if placed.status == "paid" and placed.plan == "ship" and "ship" not in placed.answers:
            return "ship"
        if placed.status == "shipped" and placed.plan == "ship" and "deliver" not in placed.answers:
            return "deliver"
        return None

    async def guarded(self, placed: Placed, step: str, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                if step == "pay":
                    if placed.plan == "pay_late":
                        await self.until_deadline(placed)
                    await self.act(placed, "pay", placed.customer.auth, {"payment_token": placed.payment_token})
                elif step == "cancel":
                    await self.act(placed, "cancel", placed.customer.auth)
                elif step == "ship":
                    await self.act(placed, "ship", self.admin, {"carrier": "DHL", "tracking_number": f"T{placed.id}"})
                else:
                    await self.act(placed, step, self.admin)
        finally:
            placed.acting = False

    async def until_deadline(self, placed: Placed) -> None:
        """Sleeps until a moment drawn within 0.3 s either side of the order's payment deadline."""
        order = (await self.call("GET", f"/api/orders/{placed.id}", headers=placed.customer.auth)).json()
        due = datetime.fromisoformat(order["payment_due_at"].replace("Z", "+00:00"))
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() + self.random.uniform(-0.3, 0.3)))

    async def act(self, placed: Placed, step: str, headers: dict[str, str], body: dict | None = None) -> None:
        """POST /api/orders/{id}/{step}; the answer is kept for the books. 200 done, 402 a declined payment,
        409 when the order had moved on (an earlier try went through, or a race was lost: the status tells)."""
        try:
            response = await self.call("POST", f"/api/orders/{placed.id}/{step}", json=body, headers=headers)
        except AssertionError as exc:
            self.surprises.append(f"{step} order {placed.id}: {exc}")
            return  # tried again on the next pass
        if response.status_code not in (200, 402, 409):
            self.surprises.append(f"{step} order {placed.id}: {response.status_code} {response.text[:200]}")
            return
        if response.status_code == 409 and "in progress" in response.text:
            return  # another call of the order is with the provider: tried again on the next pass
        # A retried call whose first try went through answers 409: the first answer stands.
        if not (response.status_code == 409 and placed.answers.get(step) == 200):
            placed.answers[step] = response.status_code

    async def steady(self, stop: asyncio.Event, rate: float = 50.0) -> Steady:
        """Requests at `rate` a second until `stop`, paced (an open loop: a slow answer doesn't slow the
        next request): product, order-list and summary GETs, and order POSTs with Idempotency-Keys (paid by
        settle_forever). Every answer must be the one a client expects; 5xx and dropped connections are
        counted in failed_answers (and tried again, as a client would)."""
        counts = Steady()
        running: set[asyncio.Task] = set()
        started, n = time.monotonic(), 0

        async def one(kind: str) -> None:
            customer = self.random.choice(self.ledger.customers)
            if kind == "order":
                await self.place(customer)
                counts.orders += 1
                return
            url, headers = {
                "product": (f"/api/products/{self.random.choice(sorted(self.ledger.products))}", {}),
                "my orders": ("/api/orders", customer.auth),
                "summary": ("/api/analytics/summary", self.admin),
            }[kind]
            response = await self.call("GET", url, headers=headers)
            if response.status_code != 200:
                counts.unexpected.append(f"GET {url}: {response.status_code} {response.text[:200]}")

        async def guarded(kind: str) -> None:
            try:
                await one(kind)
            except AssertionError as exc:  # an answer place() does not expect
                counts.unexpected.append(str(exc)[:300])

        while not stop.is_set():
            kind = self.random.choices(["product", "my orders", "summary", "order"], [45, 20, 5, 30])[0]
            task = asyncio.create_task(guarded(kind))
            running.add(task)
            task.add_done_callback(running.discard)
            counts.sent += 1
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        if running:
            await asyncio.wait(running)  # each answered and in the ledger, none cut off half-placed
        counts.seconds = time.monotonic() - started
        return counts

    def unsettled(self) -> list[Placed]:
        return [p for p in self.ledger.orders.values() if not p.settled]
