"""Refunds, shipments and deliveries: a refund takes its amount off revenue on its own day and its order's lines
off what the products sold, once, whatever arrives first."""

from datetime import UTC, datetime, timedelta

from shop_events.catalogue import OrderCreated, OrderDelivered, OrderItem, OrderPaid, OrderRefunded, OrderShipped

LAMP = [OrderItem(product_id=3, quantity=2, unit_price="7.50"), OrderItem(product_id=8, quantity=1, unit_price="10.00")]
MORE_LAMPS = [OrderItem(product_id=3, quantity=1, unit_price="12.00")]


async def test_a_refund_that_comes_before_its_payment_and_order_is_counted_once_when_they_arrive(analytics, make_event):
    long_ago = datetime.now(UTC) - timedelta(days=2)
    recent = datetime.now(UTC) - timedelta(minutes=1)
    refunded = make_event(
        OrderRefunded(order_id=9, user_id=4, refund_id="re_9", amount="25.00", items=LAMP), recent,
    )
    kept = [  # order 10 is paid, shipped and delivered; order 9 was paid long ago and is refunded now
        make_event(OrderDelivered(order_id=10, user_id=5), recent),
        make_event(OrderShipped(order_id=10, user_id=5, carrier="DHL", tracking_number="T10"), recent),
        make_event(OrderPaid(order_id=9, user_id=4, payment_id="pay_9", amount="25.00"), long_ago),
        make_event(OrderPaid(order_id=10, user_id=5, payment_id="pay_10", amount="12.00"), recent),
        make_event(OrderCreated(order_id=9, user_id=4, email="ann@example.com", total="25.00", items=LAMP), long_ago),
        make_event(OrderCreated(order_id=10, user_id=5, email="bo@example.com", total="12.00", items=MORE_LAMPS), recent),
    ]

    first = await analytics.deliver(refunded, refunded)  # and the broker redelivers it
    assert len(first.handled) == 1 and len(first.duplicates) == 1
    early = (await analytics.get("summary")).json()
    assert (early["refunds"], early["refunded"], early["orders_paid"]) == (1, "25.00", 0)
    assert (await analytics.get("products/3")).status_code == 404  # its lines are not known yet

    await analytics.deliver(*kept, refunded)
    summary = (await analytics.get("summary")).json()
    assert {k: summary[k] for k in ("orders_created", "orders_paid", "orders_shipped", "orders_delivered", "refunds")} == {
        "orders_created": 2, "orders_paid": 2, "orders_shipped": 1, "orders_delivered": 1, "refunds": 1,
    }
    assert (summary["sales_total"], summary["revenue"], summary["refunded"]) == ("37.00", "12.00", "25.00")
    assert summary["events_processed"] == 7 == await analytics.processed()

    # Product 3: order 9's two lamps came back, order 10's one is sold.
    assert (await analytics.get("products/3")).json() == {
        "product_id": 3, "units_sold": 1, "revenue": "12.00", "units_refunded": 2, "rating_avg": None, "rating_count": 0,
    }
    assert (await analytics.get("products/8")).json()["units_sold"] == 0

    days = {row["date"]: row for row in (await analytics.get("daily", days=3)).json()}
    then, now = days[str(long_ago.date())], days[str(recent.date())]
    assert (then["revenue"], then["refunds"], then["refunded"]) == ("25.00", 0, "0.00")
    assert (now["revenue"], now["refunds"], now["refunded"]) == ("-13.00", 1, "25.00")  # paid 12.00, refunded 25.00
