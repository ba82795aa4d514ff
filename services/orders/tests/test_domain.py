"""The order rules alone: state machine, pricing, totals, fingerprints. No I/O."""

from decimal import Decimal

import pytest

from orders.domain import (
    TRANSITIONS,
    IllegalTransition,
    InvalidOrder,
    OrderStatus,
    PricedLine,
    RequestedLine,
    UseARefund,
    ensure_cancellable,
    ensure_payable,
    move,
    order_total,
    price_lines,
    request_fingerprint,
    status_after_stock_event,
)

P, C, R, PAID, X = (OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.PAID,
                    OrderStatus.CANCELLED)
REF, SHIP, DLV = OrderStatus.REFUNDED, OrderStatus.SHIPPED, OrderStatus.DELIVERED
# docs/contract.md's order life, written out: pending is confirmed, rejected or cancelled; confirmed is paid or
# cancelled (by the customer, an admin, the deadline or a refused payment); paid is refunded or shipped;
# shipped is delivered.
ALLOWED = {(P, C), (P, R), (P, X), (C, PAID), (C, X), (PAID, REF), (PAID, SHIP), (SHIP, DLV)}


@pytest.mark.parametrize("current", list(OrderStatus))
@pytest.mark.parametrize("target", list(OrderStatus))
def test_only_the_contract_transitions_are_allowed(current, target):
    if (current, target) in ALLOWED:
        assert move(current, target) is target
    else:
        with pytest.raises(IllegalTransition, match=f"order is {current.value}, it cannot become {target.value}"):
            move(current, target)


def test_rejected_cancelled_refunded_and_delivered_are_final():
    assert {s for s, targets in TRANSITIONS.items() if not targets} == {R, X, REF, DLV}


def test_a_pending_or_confirmed_order_is_cancellable_a_paid_one_needs_a_refund():
    ensure_cancellable(P)
    ensure_cancellable(C)
    with pytest.raises(UseARefund, match="order is paid, it cannot be cancelled; use a refund"):
        ensure_cancellable(PAID)
    for final in (R, X, REF, SHIP, DLV):
        with pytest.raises(IllegalTransition, match=f"order is {final.value}, it cannot become cancelled"):
            ensure_cancellable(final)


def test_stock_events_move_a_pending_order_and_change_nothing_after():
    assert status_after_stock_event(P, "StockReserved") is C
    assert status_after_stock_event(P, "StockRejected") is R
    for later in (C, R, PAID, X, REF, SHIP, DLV):
        assert status_after_stock_event(later, "StockReserved") is None
        assert status_after_stock_event(later, "StockRejected") is None


def test_only_a_confirmed_order_is_payable():
    ensure_payable(C)
    for other in (P, R, PAID, X, REF, SHIP, DLV):
        with pytest.raises(IllegalTransition):
            ensure_payable(other)


PRICES = {1: Decimal("0.10"), 2: Decimal("19.99"), 3: Decimal("0.00")}


def test_lines_are_priced_from_the_catalogue_and_the_total_is_exact():
    lines = price_lines([RequestedLine(1, 3), RequestedLine(2, 7), RequestedLine(3, 1)], PRICES)
    assert lines == [PricedLine(1, 3, Decimal("0.10")), PricedLine(2, 7, Decimal("19.99")), PricedLine(3, 1, Decimal("0.00"))]
    total = order_total(lines)
    assert total == Decimal("140.23") and str(total) == "140.23"  # 0.30 + 139.93 + 0.00


def test_a_large_order_total_stays_exact():
    lines = price_lines([RequestedLine(i, 1000) for i in range(1, 101)], {i: Decimal("9999999.99") for i in range(1, 101)})
    assert order_total(lines) == Decimal("999999999000.00")


@pytest.mark.parametrize(
    ("lines", "detail"),
    [
        ([], "at least one item"),
        ([RequestedLine(1, 0)], "quantity of product 1 must be between 1 and 1000"),
        ([RequestedLine(1, -2)], "quantity of product 1"),
        ([RequestedLine(1, 1001)], "between 1 and 1000"),
        ([RequestedLine(1, 1), RequestedLine(2, 1), RequestedLine(1, 2)], "product 1 appears twice"),
        ([RequestedLine(1, 1), RequestedLine(42, 1), RequestedLine(43, 1)], "unknown product 42, 43"),
        ([RequestedLine(i, 1) for i in range(101)], "at most 100 items"),
    ],
)
def test_an_order_that_cannot_be_placed_says_why(lines, detail):
    with pytest.raises(InvalidOrder, match=detail):
        price_lines(lines, PRICES)


def test_the_fingerprint_ignores_line_order_but_not_quantities():
    a = request_fingerprint([RequestedLine(1, 2), RequestedLine(2, 1)])
    assert a == request_fingerprint([RequestedLine(2, 1), RequestedLine(1, 2)])
    assert a != request_fingerprint([RequestedLine(1, 3), RequestedLine(2, 1)])


