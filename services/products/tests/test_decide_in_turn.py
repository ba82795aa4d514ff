"""A run of orders decided together gives what deciding them one by one would: each on what the others left."""

from products.domain import Decided, Refusal, Reservation, Shelf, decide_in_turn


def test_orders_take_in_turn_and_the_one_that_finds_too_little_takes_nothing():
    shelves = {1: Shelf(stock=5, threshold=0, alerted=False), 2: Shelf(stock=1, threshold=0, alerted=False)}
    decided = decide_in_turn([(10, {1: 3}), (11, {1: 1, 2: 2}), (12, {1: 2})], shelves)
    assert decided == [
        Decided(10, Reservation({1: 3}), []),
        Decided(11, Refusal("not enough stock for product 2 (asked 2, have 1)"), []),
        Decided(12, Reservation({1: 2}), [(1, 0)]),  # reaching 0 is at or below a threshold of 0
    ]
    assert (shelves[1].stock, shelves[2].stock) == (0, 1)


def test_one_alert_per_crossing_names_the_stock_the_crossing_order_left():
    shelves = {7: Shelf(stock=10, threshold=5, alerted=False)}
    decided = decide_in_turn([(1, {7: 3}), (2, {7: 3}), (3, {7: 3})], shelves)
    assert [d.low_stock for d in decided] == [[], [(7, 4)], []]
    assert shelves[7] == Shelf(stock=1, threshold=5, alerted=True)


def test_an_unknown_product_refuses_only_its_order():
    decided = decide_in_turn([(1, {99: 1}), (2, {3: 1})], {3: Shelf(stock=1, threshold=0, alerted=False)})
    assert [d.outcome for d in decided] == [Refusal("unknown product 99"), Reservation({3: 1})]
