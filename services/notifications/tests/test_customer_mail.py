"""Events in, real mail out: each customer mail reaches the right address once, and is listed for its owner."""

from decimal import Decimal

from shop_common.testing import bearer
from shop_events.catalogue import (
    OrderCreated,
    OrderItem,
    OrderPaid,
    PaymentFailed,
    StockRejected,
    UserBanned,
    UserRegistered,
)

ANN = "ann@example.com"
STAFF = "staff@example.com"


async def notices(client, token):
    response = await client.get("/api/notifications", headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


async def test_welcome_is_mailed_once_even_when_the_event_comes_twice(served, smtp, make_token):
    client, kit = served
    [registered] = (await kit.deliver(UserRegistered(user_id=7, email=ANN, name="Ann"))).sent
    again = await kit.deliver(registered)  # the broker redelivers it
    listed = await notices(client, make_token(7))
    others = await notices(client, make_token(8))

    assert again.duplicates == [registered.event_id]
    assert [m.recipients for m in smtp.mails] == [[ANN]]
    mail = smtp.mails[0]
    assert mail.recipients == [ANN] and mail.sender == "shop@example.com"
    assert mail.subject == "Welcome to the shop" and "Hello Ann," in mail.text
    assert mail.message_id == f"<welcome.{registered.event_id}@example.com>"
    assert [(n["type"], n["subject"], n["channel"], n["status"]) for n in listed] == [
        ("welcome", "Welcome to the shop", "email", "sent")
    ]
    assert set(listed[0]) == {"id", "type", "subject", "channel", "status", "created_at"}
    assert others == []


async def test_an_order_s_life_mails_the_customer_at_each_step_and_staff_to_ship(served, smtp, make_token):
    client, kit = served
    items = [OrderItem(product_id=1, quantity=2, unit_price=Decimal("10.00"))]
    await kit.deliver(UserRegistered(user_id=7, email=ANN, name="Ann"))
    await kit.deliver(
        OrderCreated(order_id=1, user_id=7, email=ANN, total=Decimal("20.00"), items=items),
        OrderCreated(order_id=2, user_id=7, email=ANN, total=Decimal("20.00"), items=items),
    )
    assert len(smtp.to(ANN)) == 3
    await kit.deliver(StockRejected(order_id=2, user_id=7, reason="not enough stock"))
    await kit.deliver(OrderPaid(order_id=1, user_id=7, payment_id="pay_1", amount=Decimal("20.00")))
    assert len(smtp.mails) == 6
    await kit.deliver(PaymentFailed(order_id=2, user_id=7, error="card declined"))
    await kit.deliver(UserBanned(user_id=7, reason="chargebacks", banned_by=1))
    assert len(smtp.mails) == 8
    listed = await notices(client, make_token(7))
    alerts = (await client.get("/api/notifications/admin", headers=bearer(make_token(1, role="admin")))).json()
    assert kit.waiting == [] and kit.parked == []  # every address was known at the first attempt

    assert sorted(m.subject for m in smtp.to(ANN)) == sorted([
        "Welcome to the shop",
        "We received your order #1",
        "We received your order #2",
        "Your order #2 could not be accepted",
        "Payment received for order #1",
        "Payment failed for order #2",
        "Your account has been suspended",
    ])
    [ship] = smtp.to(STAFF)
    assert ship.subject == "Ship order #1" and "Ann <ann@example.com>" in ship.text
    # Newest first; every one sent; the staff alert is not the customer's.
    assert [n["type"] for n in listed] == [
        "account_banned", "payment_failed", "payment_received", "order_rejected",
        "order_confirmation", "order_confirmation", "welcome",
    ]
    assert {n["status"] for n in listed} == {"sent"}
    assert [(a["type"], a["recipient"], a["status"]) for a in alerts] == [("shipping_request", STAFF, "sent")]


async def test_mail_for_a_user_not_known_yet_waits_for_their_address(post_kit, smtp):
    """UserBanned (immediate lane) can overtake UserRegistered; the mail is retried, not dropped."""
    early = await post_kit.deliver(
        UserBanned(user_id=9, reason="spam", banned_by=1), PaymentFailed(order_id=5, user_id=9, error="insufficient funds"),
    )
    # Both were tried and failed (address unknown) before the address arrives.
    assert early.retried == [e.event_id for e in early.sent] and early.handled == []
    assert smtp.mails == []
    registered = await post_kit.deliver(UserRegistered(user_id=9, email="bob@example.com", name=None))
    again = await post_kit.redeliver()
    assert registered.handled == [registered.sent[0].event_id] and sorted(again.handled) == sorted(early.retried)

    assert sorted(m.subject for m in smtp.to("bob@example.com")) == [
        "Payment failed for order #5", "Welcome to the shop", "Your account has been suspended",
    ]


async def test_an_event_that_carries_the_address_is_mailed_at_once_before_any_copy(post_kit, smtp):
    """No copy of the user or order yet: the address in the event itself is enough."""
    result = await post_kit.deliver(
        UserBanned(user_id=11, reason="spam", banned_by=1, email="cy@example.com", name="Cy"),
        PaymentFailed(order_id=21, user_id=11, error="card declined", email="cy@example.com"),
        StockRejected(order_id=22, user_id=11, reason="not enough stock", email="cy@example.com"),
        OrderPaid(order_id=23, user_id=11, payment_id="pay_23", amount=Decimal("5.00"), email="cy@example.com"),
    )
    assert len(smtp.mails) == 5
    assert sorted(m.subject for m in smtp.to("cy@example.com")) == [
        "Payment failed for order #21", "Payment received for order #23",
        "Your account has been suspended", "Your order #22 could not be accepted",
    ]
    [banned] = [m for m in smtp.to("cy@example.com") if m.subject == "Your account has been suspended"]
    assert "Hello Cy," in banned.text
    assert [m.subject for m in smtp.to(STAFF)] == ["Ship order #23"]
    # handled on the first attempt, no retry
    assert result.handled == [e.event_id for e in result.sent] and result.retried == [] and result.parked == []


async def test_the_lists_need_a_token_and_staff_alerts_need_an_admin(served, make_token):
    client, _ = served
    assert (await client.get("/api/notifications")).status_code == 401
    assert (await client.get("/api/notifications", headers=bearer("not-a-token"))).status_code == 401
    forbidden = await client.get("/api/notifications/admin", headers=bearer(make_token(7)))
    assert forbidden.status_code == 403 and forbidden.json() == {"detail": "admin only"}
    bad_limit = await client.get("/api/notifications?limit=0", headers=bearer(make_token(7)))
    assert bad_limit.status_code == 422
