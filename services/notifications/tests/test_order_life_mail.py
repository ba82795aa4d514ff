"""After payment and instead of it: a cancel says why, a refund names the money, a shipment the parcel; a cancel
by a failed payment sends nothing more than its payment_failed mail. Each mail once, read from the SMTP sink."""

from decimal import Decimal

from shop_common.testing import bearer
from shop_events.catalogue import OrderCancelled, OrderCreated, OrderItem, OrderRefunded, OrderShipped, PaymentFailed

ANN = "ann@example.com"
ITEMS = [OrderItem(product_id=1, quantity=2, unit_price=Decimal("10.00"))]


def placed(order_id: int) -> OrderCreated:
    return OrderCreated(order_id=order_id, user_id=7, email=ANN, total=Decimal("20.00"), items=ITEMS)


def cancelled(order_id: int, cancelled_by: str | None, reason: str, email: str | None = None) -> OrderCancelled:
    return OrderCancelled(order_id=order_id, user_id=7, items=ITEMS, reason=reason, cancelled_by=cancelled_by, email=email)


async def types_listed(client, token) -> list[str]:
    response = await client.get("/api/notifications", headers=bearer(token))
    assert response.status_code == 200, response.text
    return [n["type"] for n in response.json() if n["status"] == "sent"]


async def test_a_cancel_by_the_customer_an_admin_or_the_deadline_mails_why_once(served, smtp, make_token):
    client, kit = served
    await kit.deliver(placed(1), placed(2))  # orders 1 and 2: their address comes from the copy
    first = await kit.deliver(
        cancelled(1, "customer", "cancelled by customer"),
        cancelled(2, "admin", "cancelled by an admin"),
        cancelled(3, "payment_timeout", "payment timeout", email="bo@example.com"),  # no copy: the event's own
    )
    again = await kit.deliver(*first.sent)  # redelivered
    assert first.handled == [e.event_id for e in first.sent] and again.duplicates == first.handled

    cancels = {m.subject: m.text for m in smtp.mails if "cancelled" in m.subject}
    assert sorted(cancels) == [f"Your order #{n} has been cancelled" for n in (1, 2, 3)]
    assert "cancelled by you." in cancels["Your order #1 has been cancelled"]
    assert "cancelled by the shop." in cancels["Your order #2 has been cancelled"]
    assert "payment was not received in time" in cancels["Your order #3 has been cancelled"]
    for text in cancels.values():
        assert "stock reserved for it has been released" in text and "you have not been charged" in text
    [late] = [m for m in smtp.mails if m.subject == "Your order #3 has been cancelled"]
    assert late.recipients == ["bo@example.com"]
    assert [m.subject for m in smtp.to(ANN)].count("Your order #1 has been cancelled") == 1
    assert await types_listed(client, make_token(7)) == [
        "order_cancelled", "order_cancelled", "order_cancelled", "order_confirmation", "order_confirmation",
    ]


async def test_a_cancel_by_a_failed_payment_sends_only_the_payment_failed_mail(post_kit, smtp):
    """Orders publishes PaymentFailed and OrderCancelled together; an OrderCancelled without cancelled_by is
    from a producer before it, when a failed payment was the only cause. Neither needs an address."""
    result = await post_kit.deliver(
        PaymentFailed(order_id=5, user_id=7, error="card declined", email=ANN),
        cancelled(5, "payment_failed", "card declined"),
        cancelled(6, None, "insufficient funds"),  # no address known for order 6: still nothing to wait for
    )
    assert result.handled == [e.event_id for e in result.sent] and result.retried == [] and result.parked == []
    assert [m.subject for m in smtp.mails] == ["Payment failed for order #5"]


async def test_a_refund_mails_the_amount_and_refund_id(served, smtp, make_token):
    client, kit = served
    await kit.deliver(placed(1))
    refund = OrderRefunded(order_id=1, user_id=7, refund_id="re_42", amount=Decimal("20"), items=ITEMS)
    [sent] = (await kit.deliver(refund)).sent
    assert (await kit.deliver(sent)).duplicates == [sent.event_id]

    [mail] = [m for m in smtp.to(ANN) if m.subject == "Refund for order #1"]
    assert "refunded 20.00 for order #1 (refund re_42)" in mail.text
    assert mail.message_id.strip() == f"<payment_refunded.{sent.event_id}@example.com>"  # a long one is folded
    assert len(smtp.mails) == 2  # the order's confirmation and the refund
    assert (await types_listed(client, make_token(7)))[0] == "payment_refunded"


async def test_a_shipment_mails_the_carrier_and_tracking_number_to_the_event_s_address(served, smtp, make_token):
    client, kit = served
    await kit.deliver(placed(1))
    shipped = OrderShipped(order_id=1, user_id=7, carrier="DHL", tracking_number="JD0146", email="ann.new@example.com")
    [sent] = (await kit.deliver(shipped)).sent
    assert (await kit.deliver(sent)).duplicates == [sent.event_id]

    [mail] = [m for m in smtp.mails if m.subject == "Your order #1 has shipped"]
    assert mail.recipients == ["ann.new@example.com"]  # the address on the event wins over the copy
    assert "on its way with DHL" in mail.text and "Tracking number: JD0146" in mail.text
    assert len(smtp.mails) == 2
    assert (await types_listed(client, make_token(7)))[0] == "order_shipped"
