"""Analytics counts exactly what happened: per product, and in the shop-wide summary."""

from __future__ import annotations

from decimal import Decimal

from shop import eventually
from shop_events.testing import ready_messages

COUNTS = ("users_registered", "users_banned", "orders_created", "orders_confirmed", "orders_rejected",
          "orders_paid", "orders_cancelled", "reviews")


ANALYTICS_QUEUES = [f"analytics.{lane}{wait}" for lane in ("background", "immediate")
                    for wait in ("", *(f".retry.{n}" for n in range(1, 5)))]


async def quiet_summary(shop) -> dict:
    """The summary once earlier tests' events have settled: nothing waits in analytics' queues (work or wait),
    and a marker product created now has reached it on its background lane, so whatever was queued there
    before has been counted."""

    async def drained():
        return set((await ready_messages(shop.stack.amqp_url, *ANALYTICS_QUEUES)).values()) == {0}

    async def marker_counted():
        response = await shop.http.get(f"/api/analytics/products/{marker['id']}", headers=await shop.admin())
        return response.status_code == 200

    await eventually(drained, timeout=30)
    marker = await shop.product()
    await eventually(marker_counted)
    return await shop.summary()


async def test_figures_are_exact(shop):
    before = await quiet_summary(shop)
    product = await shop.product(price="12.50", stock=3)
    customer = await shop.customer()

    paid = (await shop.place(customer, (product["id"], 2))).json()                # 25.00, paid
    await shop.status_becomes(customer, paid["id"], "confirmed")
    assert (await shop.pay(customer, paid["id"], "tok_visa")).status_code == 200
    failed = (await shop.place(customer, (product["id"], 1))).json()              # 12.50, payment fails
    await shop.status_becomes(customer, failed["id"], "confirmed")
    assert (await shop.pay(customer, failed["id"], "tok_card_declined")).status_code == 402
    rejected = (await shop.place(customer, (product["id"], 40))).json()           # 500.00, not enough stock
    await shop.status_becomes(customer, rejected["id"], "rejected")
    review = await shop.http.post(f"/api/products/{product['id']}/reviews", json={"rating": 4, "comment": "good"}, headers=customer.auth)
    assert review.status_code == 201

    expected = dict(before)
    for name, more in (("users_registered", 1), ("orders_created", 3), ("orders_confirmed", 2), ("orders_rejected", 1),
                       ("orders_paid", 1), ("orders_cancelled", 1), ("reviews", 1)):
        expected[name] = before[name] + more
    expected["sales_total"] = f"{Decimal(before['sales_total']) + Decimal('537.50'):.2f}"
    expected["revenue"] = f"{Decimal(before['revenue']) + Decimal('25.00'):.2f}"

    async def counted():
        now = await shop.summary()
        return now if {k: now[k] for k in expected if k != "events_processed"} == {
            k: v for k, v in expected.items() if k != "events_processed"
        } else None

    now = await eventually(counted, timeout=20)
    assert now["events_processed"] > before["events_processed"]

    async def product_figures():
        response = await shop.http.get(f"/api/analytics/products/{product['id']}", headers=await shop.admin())
        figures = response.json()
        return figures if figures.get("rating_count") == 1 else None

    figures = await eventually(product_figures)
    assert figures["product_id"] == product["id"]
    assert figures["units_sold"] == 2  # the cancelled and the rejected order sold nothing
    assert figures["revenue"] == "25.00"
    assert Decimal(str(figures["rating_avg"])) == Decimal("4")

    # Markers on both of analytics' lanes (UserRegistered: background, UserBanned: immediate): once both are
    # counted, every event queued there before them has been counted too, and a second count would show.
    marker = await shop.customer("Marker")
    banned = await shop.http.post(f"/api/auth/users/{marker.id}/ban", json={"reason": "marker"}, headers=await shop.admin())
    assert banned.status_code == 200, banned.text
    expected |= {"users_registered": expected["users_registered"] + 1, "users_banned": expected["users_banned"] + 1}

    async def markers_counted():
        now = await shop.summary()
        return now if all(now[k] >= expected[k] for k in ("users_registered", "users_banned")) else None

    now = await eventually(markers_counted)
    assert {k: now[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}, "counted twice"

    daily = await shop.http.get("/api/analytics/daily?days=1", headers=await shop.admin())
    assert daily.status_code == 200 and len(daily.json()) >= 1
    assert (await shop.http.get("/api/analytics/summary", headers=customer.auth)).status_code == 403
