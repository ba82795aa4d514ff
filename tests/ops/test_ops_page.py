"""The operations page in a real headless Chromium (Debian's, driven by Playwright), through the stack's gateway:
an admin signs in, sees a poison message parked with its reason, replays a mail once its cause is fixed, and
follows an order's whole life across the services: OrderCreated → StockReserved → OrderPaid → OrderShipped → OrderDelivered."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from ops_browser import browser_page, sign_in
from shop import eventually, unique_email
from shop_events.testing import publish_raw


@pytest.fixture
async def page(stack) -> AsyncIterator[object]:
    async with browser_page(stack) as opened:
        yield opened


async def test_an_admin_replays_a_parked_mail_and_follows_an_order(shop, stack, page):
    from playwright.async_api import expect

    # A poison message (only notifications takes stock.low), and a welcome mail the relay refuses for now.
    poison_id = f"poison-{uuid.uuid4().hex[:8]}"
    await publish_raw(stack.amqp_url, "stock.low", b"{this is not an event", message_id=poison_id, type="StockLow")
    refused, signup = unique_email("refused"), f"ops-signup-{uuid.uuid4().hex[:10]}"
    stack.relay.refusing.add(refused)
    registered = await shop.http.post(
        "/api/auth/register", json={"email": refused, "password": "correct-horse-9"}, headers={"X-Request-ID": signup}
    )
    assert registered.status_code == 201

    async def parked_welcome() -> bool:
        parked = (await shop.http.get("/api/notifications/parked", headers=await shop.admin())).json()["parked"]
        return any(p["correlation_id"] == signup and p["event_type"] == "UserRegistered" for p in parked)

    await eventually(parked_welcome)

    # A customer is turned away; the admin gets in.
    customer = await shop.customer()
    await page.goto(f"{stack.gateway}/ops/")
    await sign_in(page, customer.email, customer.password)
    await expect(page.locator("#login-error")).to_contain_text("for admins")
    await expect(page.locator("#ops")).to_be_hidden()
    await sign_in(page, stack.admin_email, stack.admin_password)
    await expect(page.locator("#who-email")).to_have_text(stack.admin_email)

    # Queues with their consumers; both parked messages with their reasons.
    await expect(page.locator("#queues tr[data-queue='orders.background'] td.consumers")).to_have_text("1")
    parked_count = page.locator("#queues tr[data-queue='notifications.background'] td.parked")
    await expect(parked_count).not_to_have_text("0")
    poison = page.locator(f"#parked tr[data-message-id='{poison_id}']")
    await expect(poison).to_contain_text("undecodable envelope")
    await expect(poison).to_contain_text("notifications.background.dlq")
    welcome = page.locator("#parked tbody tr", has_text=signup)
    await expect(welcome).to_contain_text("UserRegistered")
    await expect(welcome).to_contain_text("failed 2 times; last error: SMTPRecipientsRefused")

    # The relay takes that mailbox again: Replay, and the welcome mail goes out; the poison stays parked.
    parked_before = int(await parked_count.text_content())
    stack.relay.refusing.discard(refused)
    await welcome.get_by_role("button", name="Replay").click()
    await expect(welcome).to_have_count(0)

    async def welcome_mail() -> list[bytes]:
        return stack.relay.mail_to(refused)

    await eventually(welcome_mail)
    await expect(poison).to_have_count(1)
    await expect(parked_count).to_have_text(str(parked_before - 1))

    # An order's whole life, placed, paid, shipped and delivered by four requests, followed by its number; then
    # by the correlation id of the first request alone.
    product = await shop.product(stock=50)
    buyer = await shop.customer()
    placing = f"ops-place-{uuid.uuid4().hex[:10]}"
    order_id = (await shop.place(buyer, (product["id"], 2), headers={"X-Request-ID": placing})).json()["id"]
    await shop.status_becomes(buyer, order_id, "confirmed")
    assert (await shop.pay(buyer, order_id, "tok_visa")).status_code == 200
    await shop.notification(buyer, "payment_received")
    assert (await shop.ship(order_id)).status_code == 200
    assert (await shop.deliver(order_id)).status_code == 200

    await page.fill("#trace-query", f"order {order_id}")
    await page.click("#trace-form button[type=submit]")
    await expect(page.locator("#trace-summary")).to_contain_text(
        "OrderCreated → StockReserved → OrderPaid → OrderShipped → OrderDelivered"
    )
    chain = page.locator("#chain li")
    assert [await item.get_attribute("data-event-type") for item in await chain.all()] == [
        "OrderCreated", "StockReserved", "OrderPaid", "OrderShipped", "OrderDelivered"
    ]
    created = page.locator("#chain li[data-event-type='OrderCreated']")
    await expect(created).to_contain_text("published by orders")
    for service in ("products", "notifications", "analytics"):
        await expect(created).to_contain_text(f"{service} at")
    await expect(page.locator("#chain li[data-event-type='StockReserved']")).to_contain_text("orders at")

    await page.fill("#trace-query", placing)
    await page.click("#trace-form button[type=submit]")
    await expect(page.locator("#trace-summary")).to_contain_text(f"2 event(s) for correlation id {placing}")
    await expect(chain).to_have_count(2)
    await expect(chain.nth(0)).to_have_attribute("data-event-type", "OrderCreated")
    await expect(chain.nth(1)).to_have_attribute("data-event-type", "StockReserved")


async def test_the_page_shows_the_history_stream_and_a_rebuilds_position(shop, stack, page):
    import asyncio
    import subprocess
    from pathlib import Path

    from playwright.async_api import expect

    await shop.customer()  # at least one event in the history
    rebuilt = await asyncio.to_thread(
        subprocess.run, ["deploy/local/rebuild.sh"], cwd=Path(__file__).resolve().parents[2],
        env={**stack.env, "S": "notifications"}, capture_output=True, text=True, timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    await page.goto(f"{stack.gateway}/ops/")
    await sign_in(page, stack.admin_email, stack.admin_password)
    await expect(page.locator("#history-stream")).to_contain_text("shop.history:")
    await expect(page.locator("#history-stream")).to_contain_text("oldest event 20")
    row = page.locator("#history tr[data-service='notifications']")
    await expect(row).to_contain_text("finished")
