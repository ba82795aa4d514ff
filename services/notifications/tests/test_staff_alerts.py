"""Staff alerts: low stock to staff and a reorder to the supplier, listed for admins only."""

from shop_common.testing import bearer, eventually, running
from shop_events.catalogue import StockLow
from shop_events.testing import publish_events

from notifications.main import create_app

STAFF = "staff@example.com"
SUPPLIER = "mugs@example.com"


async def test_low_stock_alerts_staff_and_asks_the_supplier_when_there_is_one(notifications_env, smtp, amqp_url, make_token):
    app = create_app()
    async with running(app) as client:
        await publish_events(
            amqp_url, StockLow(product_id=9, current_stock=3, threshold=10, name="Mug", supplier_email=SUPPLIER)
        )
        await eventually(lambda: len(smtp.mails) == 2)
        await publish_events(amqp_url, StockLow(product_id=4, current_stock=0, threshold=2))
        await eventually(lambda: len(smtp.mails) == 3)
        admin = bearer(make_token(1, role="admin"))
        alerts = await eventually(lambda: _alerts_when(client, admin, 3))
        customer_view = (await client.get("/api/notifications", headers=bearer(make_token(1, role="admin")))).json()

    assert sorted(m.subject for m in smtp.to(STAFF)) == ["Stock low: Mug (product #9)", "Stock low: product #4"]
    [reorder] = smtp.to(SUPPLIER)
    assert reorder.subject == "Reorder: 17 x Mug (product #9)" and "send us 17 units" in reorder.text
    assert [(a["type"], a["recipient"], a["status"]) for a in alerts] == [
        ("stock_low", STAFF, "sent"),
        ("supplier_reorder", SUPPLIER, "sent"),
        ("stock_low", STAFF, "sent"),
    ]
    assert all(a["channel"] == "email" and a["sent_at"] for a in alerts)
    assert customer_view == []  # staff alerts are nobody's own notifications


async def _alerts_when(client, headers, count):
    response = await client.get("/api/notifications/admin", headers=headers)
    assert response.status_code == 200, response.text
    alerts = response.json()
    # The sink has a mail before its row is marked sent (the relay's answer comes first): wait for the marks.
    return alerts if len(alerts) == count and all(a["status"] != "pending" for a in alerts) else None
