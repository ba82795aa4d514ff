"""The analytics routes: admin only, their validation, and figures that do not depend on arrival order."""

from datetime import UTC, datetime, timedelta

from shop_common.testing import bearer
from shop_events.catalogue import (
    OrderCreated,
    OrderItem,
    OrderPaid,
    ProductCreated,
    ProductReviewed,
    ReviewModerated,
    StockReserved,
)


async def test_figures_need_a_token_and_are_for_admins_only(analytics, make_token):
    for path in ["summary", "products/1", "daily"]:
        url = f"/api/analytics/{path}"
        assert (await analytics.client.get(url)).status_code == 401, path
        customer = await analytics.client.get(url, headers=bearer(make_token(7)))
        assert customer.status_code == 403 and customer.json() == {"detail": "admin only"}, path


async def test_a_fresh_service_reports_zeros_and_a_month_of_empty_days(analytics):
    summary = await analytics.get("summary")
    assert summary.status_code == 200
    assert summary.json() == {
        "users_registered": 0, "users_banned": 0, "orders_created": 0, "orders_confirmed": 0,
        "orders_rejected": 0, "orders_paid": 0, "orders_cancelled": 0, "orders_shipped": 0, "orders_delivered": 0,
        "refunds": 0, "sales_total": "0.00", "revenue": "0.00", "refunded": "0.00", "reviews": 0, "events_processed": 0,
    }
    daily = (await analytics.get("daily")).json()
    today = datetime.now(UTC).date()
    assert [row["date"] for row in daily] == [str(today - timedelta(days=n)) for n in range(29, -1, -1)]
    assert {(r["registrations"], r["orders"], r["sales"], r["revenue"], r["refunds"], r["refunded"]) for r in daily} == {
        (0, 0, "0.00", "0.00", 0, "0.00")
    }


async def test_daily_takes_one_to_366_days_and_refuses_any_other_window(analytics):
    assert len((await analytics.get("daily", days=1)).json()) == 1
    assert len((await analytics.get("daily", days=366)).json()) == 366
    for days in ["0", "367", "-3", "week"]:
        response = await analytics.get("daily", days=days)
        assert response.status_code == 422 and "detail" in response.json(), days


async def test_a_product_no_event_named_is_404_and_a_created_one_that_sold_nothing_is_zeros(analytics):
    assert (await analytics.get("products/55")).status_code == 404
    await analytics.deliver(ProductCreated(product_id=55, name="Lamp", price="19.90", stock=3))
    assert await analytics.processed() == 1
    response = await analytics.get("products/55")
    assert response.status_code == 200
    assert response.json() == {
        "product_id": 55, "units_sold": 0, "revenue": "0.00", "units_refunded": 0, "rating_avg": None, "rating_count": 0,
    }
    assert (await analytics.get("products/56")).status_code == 404


async def test_a_payment_that_arrives_before_its_order_counts_once_the_order_arrives(analytics, make_event):
    placed_at = datetime.now(UTC) - timedelta(hours=1)
    created = OrderCreated(
        order_id=9, user_id=4, email="ann@example.com", total="25.00",
        items=[OrderItem(product_id=3, quantity=2, unit_price="7.50"), OrderItem(product_id=8, quantity=1, unit_price="10.00")],
    )
    # The order's later events first: each must be taken as it comes, none may fail or wait.
    await analytics.deliver(
        make_event(OrderPaid(order_id=9, user_id=4, payment_id="pay_1", amount="25.00"), placed_at + timedelta(minutes=2)),
        make_event(StockReserved(order_id=9), placed_at + timedelta(minutes=1)),
    )
    assert await analytics.processed() == 2
    summary = (await analytics.get("summary")).json()
    assert (summary["orders_created"], summary["orders_confirmed"], summary["orders_paid"]) == (0, 1, 1)
    assert (summary["revenue"], summary["sales_total"]) == ("25.00", "0.00")
    assert (await analytics.get("products/3")).status_code == 404  # its lines are not known yet

    await analytics.deliver(make_event(created, placed_at))
    assert await analytics.processed() == 3
    summary = (await analytics.get("summary")).json()
    assert (summary["orders_created"], summary["sales_total"], summary["revenue"]) == (1, "25.00", "25.00")
    assert (await analytics.get("products/3")).json() == {
        "product_id": 3, "units_sold": 2, "revenue": "15.00", "units_refunded": 0, "rating_avg": None, "rating_count": 0,
    }
    assert (await analytics.get("products/8")).json()["revenue"] == "10.00"


async def test_ratings_count_published_reviews_only_and_reviews_counts_submissions(analytics):
    reviews = [(1, 5, "published"), (2, 4, "published"), (3, 1, "rejected"), (4, 2, None)]  # 4 is still pending
    events = []
    for review_id, rating, verdict in reviews:
        events.append(ProductReviewed(review_id=review_id, product_id=70, user_id=review_id, rating=rating, comment="ok"))
        if verdict:
            events.append(ReviewModerated(review_id=review_id, product_id=70, user_id=review_id, rating=rating, status=verdict))
    result = await analytics.deliver(*reversed(events))  # every verdict before its review
    assert len(result.handled) == len(events)
    figures = (await analytics.get("products/70")).json()
    assert (figures["rating_avg"], figures["rating_count"]) == ("4.50", 2)
    assert (await analytics.get("summary")).json()["reviews"] == 4



async def test_two_reservations_of_one_order_in_a_run_count_it_confirmed_once_at_the_earlier(analytics, make_event):
    """A run of StockReserved is written in one statement, which may touch each order once: the run's two
    events for order 9 (a second reservation event, as a replayed producer could send) become one fact."""
    at = datetime.now(UTC) - timedelta(hours=1)
    await analytics.deliver(
        make_event(StockReserved(order_id=9), at + timedelta(minutes=5)),
        make_event(StockReserved(order_id=10), at),
        make_event(StockReserved(order_id=9), at + timedelta(minutes=1)),
    )
    assert await analytics.processed() == 3
    assert (await analytics.get("summary")).json()["orders_confirmed"] == 2
    confirmed = await analytics.pool.fetchval("SELECT confirmed_at FROM orders WHERE order_id = 9")
    assert confirmed == at + timedelta(minutes=1)
