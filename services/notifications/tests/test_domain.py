"""The pure rules: who gets which mail, what it says, and the Message-ID that marks a resent copy."""

import uuid
from decimal import Decimal

from notifications import domain
from notifications.domain import Audience, NoticeType


def test_customer_mails_go_to_the_customer_and_staff_alerts_to_staff():
    welcome = domain.welcome(7, "ann@example.com", "Ann")
    shipping = domain.shipping_request("staff@example.com", 3, 7, "ann@example.com", "Ann", Decimal("5.00"), "pay_1")
    assert (welcome.recipient, welcome.user_id, welcome.audience) == ("ann@example.com", 7, Audience.CUSTOMER)
    assert (shipping.recipient, shipping.user_id, shipping.audience) == ("staff@example.com", None, Audience.STAFF)
    assert "Ann <ann@example.com>" in shipping.body and "customer #7" in shipping.body


def test_every_notice_type_has_its_audience():
    staff = {t for t in NoticeType if domain.Notice(t, "x@example.com", "s", "b").audience is Audience.STAFF}
    assert staff == {NoticeType.STOCK_LOW, NoticeType.SUPPLIER_REORDER, NoticeType.SHIPPING_REQUEST}


def test_order_mails_name_the_order_and_show_money_with_two_decimals():
    confirmation = domain.order_confirmation(
        7, "ann@example.com", 42, Decimal("21.50"), [(1, 2, Decimal("10.75"))]
    )
    assert confirmation.subject == "We received your order #42"
    assert "2 x product #1 at 10.75" in confirmation.body and "Total: 21.50" in confirmation.body
    paid = domain.payment_received(7, "ann@example.com", 42, Decimal("21.5"), "pay_9")
    assert paid.subject == "Payment received for order #42" and "21.50" in paid.body and "pay_9" in paid.body
    rejected = domain.order_rejected(7, "ann@example.com", 42, "not enough stock")
    assert "#42" in rejected.subject and "not enough stock" in rejected.body
    failed = domain.payment_failed(7, "ann@example.com", 42, "card declined")
    assert "#42" in failed.subject and "card declined" in failed.body


def test_greeting_uses_the_name_when_known():
    assert domain.welcome(1, "a@example.com", "Ann").body.startswith("Hello Ann,")
    assert domain.welcome(1, "a@example.com", None).body.startswith("Hello,")
    assert "spam" in domain.account_banned(1, "a@example.com", None, "spam").body


def test_reorder_brings_stock_back_to_twice_the_threshold_and_at_least_one():
    assert domain.reorder_quantity(current_stock=3, threshold=10) == 17
    assert domain.reorder_quantity(current_stock=0, threshold=5) == 10
    assert domain.reorder_quantity(current_stock=0, threshold=0) == 1
    reorder = domain.supplier_reorder("sup@example.com", 9, "Mug", 3, 10)
    assert reorder.subject == "Reorder: 17 x Mug (product #9)" and reorder.recipient == "sup@example.com"
    assert domain.stock_low("staff@example.com", 9, None, 3, 10).subject == "Stock low: product #9"


def test_message_id_is_the_same_for_one_event_and_type_and_differs_otherwise():
    event, other = uuid.uuid4(), uuid.uuid4()
    first = domain.message_id(event, NoticeType.PAYMENT_RECEIVED, "shop@example.com")
    assert first == domain.message_id(event, NoticeType.PAYMENT_RECEIVED, "shop@example.com")
    assert first == f"<payment_received.{event}@example.com>"
    assert first != domain.message_id(event, NoticeType.SHIPPING_REQUEST, "shop@example.com")
    assert first != domain.message_id(other, NoticeType.PAYMENT_RECEIVED, "shop@example.com")


def test_a_cancel_mail_says_why_and_a_failed_payment_s_cancel_gets_none():
    assert [by for by in ("customer", "admin", "payment_timeout", "payment_failed", None) if domain.mails_cancellation(by)] == [
        "customer", "admin", "payment_timeout",
    ]
    by_deadline = domain.order_cancelled(7, "ann@example.com", 42, "payment_timeout")
    assert (by_deadline.type, by_deadline.subject) == (NoticeType.ORDER_CANCELLED, "Your order #42 has been cancelled")
    assert "not received in time" in by_deadline.body and "not been charged" in by_deadline.body
    assert "by you" in domain.order_cancelled(7, "ann@example.com", 42, "customer").body
    assert "by the shop" in domain.order_cancelled(7, "ann@example.com", 42, "admin").body


def test_refund_and_shipping_mails_name_the_money_and_the_parcel():
    refund = domain.payment_refunded(7, "ann@example.com", 42, Decimal("21.5"), "re_1")
    assert refund.subject == "Refund for order #42" and "21.50" in refund.body and "re_1" in refund.body
    shipped = domain.order_shipped(7, "ann@example.com", 42, "UPS", "1Z999")
    assert shipped.subject == "Your order #42 has shipped" and "UPS" in shipped.body and "1Z999" in shipped.body
    assert {refund.audience, shipped.audience} == {Audience.CUSTOMER}
