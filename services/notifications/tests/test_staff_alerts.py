"""Staff alerts: low stock to staff and a reorder to the supplier, listed for admins only."""

from shop_common.testing import bearer
from shop_events.catalogue import StockLow

STAFF = "staff@example.com"
SUPPLIER = "mugs@example.com"


async def test_low_stock_alerts_staff_and_asks_the_supplier_when_there_is_one(served, smtp, make_token):
    client, kit = served
    await kit.deliver(StockLow(product_id=9, current_stock=3, threshold=10, name="Mug", supplier_email=SUPPLIER))
    assert len(smtp.mails) == 2
    result = await kit.deliver(StockLow(product_id=4, current_stock=0, threshold=2))
    assert len(smtp.mails) == 3 and len(result.handled) == 1
    admin = bearer(make_token(1, role="admin"))
    answer = await client.get("/api/notifications/admin", headers=admin)
    assert answer.status_code == 200, answer.text
    alerts = answer.json()
    customer_view = (await client.get("/api/notifications", headers=admin)).json()

    assert sorted(m.subject for m in smtp.to(STAFF)) == ["Stock low: Mug (product #9)", "Stock low: product #4"]
    [reorder] = smtp.to(SUPPLIER)
    assert reorder.subject == "Reorder: 17 x Mug (product #9)" and "send us 17 units" in reorder.text
    # each marked sent once the relay accepted it, before its event's handler returned
    assert [(a["type"], a["recipient"], a["status"]) for a in alerts] == [
        ("stock_low", STAFF, "sent"),
        ("supplier_reorder", SUPPLIER, "sent"),
        ("stock_low", STAFF, "sent"),
    ]
    assert all(a["channel"] == "email" and a["sent_at"] for a in alerts)
    assert customer_view == []  # staff alerts are nobody's own notifications
