"""The pure rules: reservation all-or-nothing, one low-stock alert per crossing, moderation, averages."""

import pytest

from products.domain import (
    Refusal,
    Reservation,
    ReviewStatus,
    decide_reservation,
    low_stock_check,
    moderate,
    wanted_quantities,
)


def test_every_line_available_reserves_all_of_them():
    assert decide_reservation({1: 2, 2: 5}, {1: 2, 2: 9}) == Reservation({1: 2, 2: 5})


def test_one_short_line_refuses_the_whole_order_and_names_the_product():
    decision = decide_reservation({7: 3, 8: 1}, {7: 1, 8: 100})
    assert decision == Refusal("not enough stock for product 7 (asked 3, have 1)")


def test_an_unknown_product_refuses_the_order():
    assert decide_reservation({9: 1}, {}) == Refusal("unknown product 9")


def test_every_problem_is_named():
    decision = decide_reservation({3: 1, 4: 2}, {4: 0})
    assert decision == Refusal("unknown product 3; not enough stock for product 4 (asked 2, have 0)")


def test_a_product_on_two_lines_is_asked_for_once_with_the_sum_in_id_order():
    wanted = wanted_quantities([(5, 1), (2, 1), (5, 2)])
    assert list(wanted.items()) == [(2, 1), (5, 3)]
    assert decide_reservation(wanted, {2: 1, 5: 2}) == Refusal("not enough stock for product 5 (asked 3, have 2)")


@pytest.mark.parametrize(
    ("stock", "threshold", "alerted", "expected"),
    [
        (6, 5, False, (False, False)),  # above: nothing
        (5, 5, False, (True, True)),  # reaching the threshold is a crossing
        (0, 5, False, (True, True)),
        (3, 5, True, (True, False)),  # still down there: alerted already
        (6, 5, True, (False, False)),  # back above: the next crossing alerts again
        (0, 0, False, (True, True)),
    ],
)
def test_low_stock_alerts_once_per_crossing(stock, threshold, alerted, expected):
    state = low_stock_check(stock, threshold, alerted)
    assert (state.alerted, state.alert) == expected


def test_a_run_of_reservations_alerts_once_until_restocked():
    alerted, alerts = False, 0
    for stock in [8, 6, 5, 3, 1, 0, 4, 20, 9, 5, 2]:
        state = low_stock_check(stock, 5, alerted)
        alerted, alerts = state.alerted, alerts + state.alert
    assert alerts == 2


@pytest.mark.parametrize(
    "comment",
    ["see http://spam.example.com", "HTTPS://x.example.com deals", "visit www.example.com", "WWW.EXAMPLE.COM"],
)
def test_a_comment_with_a_link_is_rejected(comment):
    assert moderate(comment) is ReviewStatus.REJECTED


@pytest.mark.parametrize("comment", ["Great kettle, boils fast.", "www is not a link without its dot", "http: colon only"])
def test_any_other_comment_is_published(comment):
    assert moderate(comment) is ReviewStatus.PUBLISHED

