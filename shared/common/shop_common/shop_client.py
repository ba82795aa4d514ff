"""A client of the running shop, as a person's script would be: HTTP through the gateway, mail from the sink.

The end-to-end, security, operability and contract suites drive the shop with it (as `shop`, tests/e2e/shop.py),
and so does the benchmark; it needs httpx, which the test extra and requirements-dev.txt pin."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx


@dataclass(frozen=True)
class Stack:
    gateway: str
    amqp_url: str
    mail_dir: Path
    admin_email: str
    admin_password: str


@dataclass
class Customer:
    id: int
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def unique_email(who: str = "customer") -> str:
    return f"{who}-{uuid.uuid4().hex[:10]}@example.com"


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Polls an async check until it returns something truthy; fails with the last value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"not true within {timeout}s; last value: {value!r}")


class Shop:
    def __init__(self, http: httpx.AsyncClient, stack: Stack) -> None:
        self.http = http
        self.stack = stack
        self._admin: dict[str, str] | None = None

    # ---- people ----

    async def login(self, email: str, password: str) -> httpx.Response:
        return await self.http.post("/api/auth/login", json={"email": email, "password": password})

    async def admin(self) -> dict[str, str]:
        if self._admin is None:
            response = await self.login(self.stack.admin_email, self.stack.admin_password)
            assert response.status_code == 200, response.text
            self._admin = {"Authorization": f"Bearer {response.json()['access_token']}"}
        return self._admin

    async def customer(self, name: str = "Ada", headers: dict[str, str] | None = None) -> Customer:
        email, password = unique_email(), "correct-horse-9"
        registered = await self.http.post(
            "/api/auth/register", json={"email": email, "password": password, "name": name}, headers=headers or {}
        )
        assert registered.status_code == 201, registered.text
        logged_in = await self.login(email, password)
        assert logged_in.status_code == 200, logged_in.text
        return Customer(registered.json()["id"], email, password, logged_in.json()["access_token"])

    # ---- catalogue ----

    async def product(self, price: str = "10.00", stock: int = 10, threshold: int | None = None, **extra: Any) -> dict:
        body = {"name": f"Thing {uuid.uuid4().hex[:8]}", "description": "made for a test", "price": price, "stock": stock}
        if threshold is not None:
            body["low_stock_threshold"] = threshold
        body.update(extra)
        response = await self.http.post("/api/products", json=body, headers=await self.admin())
        assert response.status_code == 201, response.text
        return response.json()

    async def stock_of(self, product_id: int) -> int:
        response = await self.http.get(f"/api/products/{product_id}")
        assert response.status_code == 200, response.text
        return response.json()["stock"]

    # ---- orders ----

    async def place(self, who: Customer, *lines: tuple[int, int], headers: dict[str, str] | None = None) -> httpx.Response:
        """POST /api/orders. Orders learns of a new product from ProductCreated a moment after products
        committed it; until then it answers 422 unknown product, and a client tries again."""
        body = {"items": [{"product_id": p, "quantity": q} for p, q in lines]}
        deadline = time.monotonic() + 15
        while True:
            response = await self.http.post("/api/orders", json=body, headers={**who.auth, **(headers or {})})
            if response.status_code != 422 or "product" not in response.text.lower() or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.1)

    async def order(self, who: Customer, order_id: int) -> httpx.Response:
        return await self.http.get(f"/api/orders/{order_id}", headers=who.auth)

    async def status_becomes(self, who: Customer, order_id: int, status: str, timeout: float = 15.0) -> dict:
        async def check() -> dict | None:
            body = (await self.order(who, order_id)).json()
            return body if body.get("status") == status else None

        return await eventually(check, timeout)

    async def pay(self, who: Customer, order_id: int, token: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(
            f"/api/orders/{order_id}/pay", json={"payment_token": token}, headers={**who.auth, **(headers or {})}
        )

    async def cancel(self, who: Customer | None, order_id: int) -> httpx.Response:
        """POST /cancel as the customer, or as the admin when `who` is None."""
        headers = who.auth if who is not None else await self.admin()
        return await self.http.post(f"/api/orders/{order_id}/cancel", headers=headers)

    async def refund(self, order_id: int) -> httpx.Response:
        return await self.http.post(f"/api/orders/{order_id}/refund", headers=await self.admin())

    async def ship(self, order_id: int, carrier: str = "DHL", tracking_number: str = "JD0146") -> httpx.Response:
        body = {"carrier": carrier, "tracking_number": tracking_number}
        return await self.http.post(f"/api/orders/{order_id}/ship", json=body, headers=await self.admin())

    async def deliver(self, order_id: int) -> httpx.Response:
        return await self.http.post(f"/api/orders/{order_id}/deliver", headers=await self.admin())

    # ---- notifications and mail ----

    async def notifications(self, who: Customer) -> list[dict]:
        response = await self.http.get("/api/notifications", headers=who.auth)
        assert response.status_code == 200, response.text
        return response.json()

    async def notification(self, who: Customer, kind: str, status: str = "sent") -> dict:
        async def check() -> dict | None:
            return next((n for n in await self.notifications(who) if n["type"] == kind and n["status"] == status), None)

        return await eventually(check)

    async def staff_alerts(self) -> list[dict]:
        response = await self.http.get("/api/notifications/admin", headers=await self.admin())
        assert response.status_code == 200, response.text
        return response.json()

    def mails_to(self, address: str) -> list[EmailMessage]:
        found = []
        for path in sorted(self.stack.mail_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address in str(message["X-Envelope-To"]):
                found.append(message)
        return found

    async def mail(self, address: str, *words: str) -> EmailMessage:
        """The first mail to that address whose subject or text holds every word (case-insensitive)."""

        def text(message: EmailMessage) -> str:
            body = message.get_body(preferencelist=("plain", "html"))
            return f"{message['Subject']}\n{body.get_content() if body else ''}".lower()

        async def check() -> EmailMessage | None:
            return next((m for m in self.mails_to(address) if all(w.lower() in text(m) for w in words)), None)

        return await eventually(check)

    # ---- analytics ----

    async def summary(self) -> dict:
        response = await self.http.get("/api/analytics/summary", headers=await self.admin())
        assert response.status_code == 200, response.text
        return response.json()


def money(value: str) -> Decimal:
    assert isinstance(value, str) and value.count(".") == 1 and len(value.split(".")[1]) == 2, value
    return Decimal(value)
