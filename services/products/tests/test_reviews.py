"""Reviews: posted pending, moderated in the background by this service's own consumer."""

from shop_common.testing import bearer
from shop_events.catalogue import ProductReviewed
from shop_events.testing import EventProbe, publish_events

REVIEW_KEYS = ("product.reviewed", "review.moderated")


async def test_a_clean_review_is_published_and_counted_a_review_with_a_link_is_rejected(shop, make_token):
    product = await shop.add_product()
    pid = product["id"]
    alice, bob, carol = bearer(make_token(11)), bearer(make_token(12)), bearer(make_token(13))
    async with EventProbe(shop.amqp_url, *REVIEW_KEYS) as probe:
        posted = await shop.client.post(
            f"/api/products/{pid}/reviews", json={"rating": 4, "comment": "Boils fast."},
            headers={**alice, "X-Request-ID": "review-1"},
        )
        assert posted.status_code == 201, posted.text
        assert posted.json() == {"id": posted.json()["id"], "product_id": pid, "status": "pending"}
        spam = await shop.client.post(
            f"/api/products/{pid}/reviews", json={"rating": 5, "comment": "Cheap kettles at WWW.example.com"}, headers=bob
        )
        assert spam.status_code == 201 and spam.json()["status"] == "pending"
        await probe.wait_for("ReviewModerated", 2)
        await shop.client.post(f"/api/products/{pid}/reviews", json={"rating": 1, "comment": "Leaks."}, headers=carol)
        await probe.wait_for("ReviewModerated", 3)

    reviewed = probe.bodies("ProductReviewed")[0]
    assert reviewed["correlation_id"] == "review-1"
    assert reviewed["data"] == {"review_id": posted.json()["id"], "product_id": pid, "user_id": 11, "rating": 4, "comment": "Boils fast."}
    outcomes = {b["data"]["review_id"]: b["data"] for b in probe.bodies("ReviewModerated")}
    assert outcomes[posted.json()["id"]] == {
        "review_id": posted.json()["id"], "product_id": pid, "user_id": 11, "rating": 4, "status": "published"
    }
    assert outcomes[spam.json()["id"]]["status"] == "rejected"
    assert probe.bodies("ReviewModerated")[0]["correlation_id"] == "review-1"

    reviews = (await shop.client.get(f"/api/products/{pid}/reviews")).json()
    assert [(r["user_id"], r["rating"], r["comment"]) for r in reviews] == [(13, 1, "Leaks."), (11, 4, "Boils fast.")]
    shown = await shop.product(pid)
    assert (shown["rating_avg"], shown["rating_count"]) == ("2.50", 2)  # the rejected 5 counts for nothing


async def test_a_pending_review_is_not_shown_and_a_review_is_moderated_once(shop, make_token):
    product = await shop.add_product()
    pid = product["id"]
    # a review still waiting for moderation (written without its event, so it stays pending)
    await shop.pool.execute("INSERT INTO reviews (product_id, user_id, rating, comment) VALUES ($1, 99, 1, 'Meh.')", pid)
    assert (await shop.client.get(f"/api/products/{pid}/reviews")).json() == []
    assert (await shop.product(pid))["rating_count"] == 0

    async with EventProbe(shop.amqp_url, *REVIEW_KEYS) as probe:
        first = await shop.client.post(f"/api/products/{pid}/reviews", json={"rating": 5, "comment": "Lovely."}, headers=bearer(make_token(11)))
        [reviewed] = await probe.wait_for("ProductReviewed")
        await probe.wait_for("ReviewModerated")
        # the same review announced again under a new event id: already moderated, counted once
        await publish_events(shop.amqp_url, ProductReviewed(**reviewed["data"]))
        # the marker: a new review, queued after the repeat on the same lane and moderated after it
        second = await shop.client.post(f"/api/products/{pid}/reviews", json={"rating": 2, "comment": "Loud."}, headers=bearer(make_token(12)))
        assert second.status_code == 201, second.text
        before_marker = await probe.until_marker("ReviewModerated", review_id=second.json()["id"])
    moderated = [b["data"]["review_id"] for b in before_marker if b["event_type"] == "ReviewModerated"]
    assert moderated == [first.json()["id"]], "the repeated announcement was moderated (and published) again"
    shown = await shop.product(pid)
    assert (shown["rating_avg"], shown["rating_count"]) == ("3.50", 2)
    assert len((await shop.client.get(f"/api/products/{pid}/reviews")).json()) == 2


async def test_reviews_refuse_a_second_review_unknown_products_bad_input_and_non_customers(shop, make_token):
    product = await shop.add_product()
    url = f"/api/products/{product['id']}/reviews"
    alice = bearer(make_token(11))
    assert (await shop.client.post(url, json={"rating": 3, "comment": "Fine."})).status_code == 401
    assert (await shop.client.post(url, json={"rating": 3, "comment": "Fine."}, headers=shop.admin)).status_code == 403
    assert (await shop.client.post(url, json={"rating": 3, "comment": "Fine."}, headers=alice)).status_code == 201
    again = await shop.client.post(url, json={"rating": 5, "comment": "Changed my mind."}, headers=alice)
    assert again.status_code == 409 and "already reviewed" in again.json()["detail"]
    missing = await shop.client.post("/api/products/999999/reviews", json={"rating": 3, "comment": "Fine."}, headers=alice)
    assert missing.status_code == 404
    assert (await shop.client.get("/api/products/999999/reviews")).status_code == 404
    bob = bearer(make_token(12))
    for bad in [{"rating": 0, "comment": "x"}, {"rating": 6, "comment": "x"}, {"rating": 3, "comment": "  "},
                {"rating": 3, "comment": "x" * 2001}, {"rating": 3}, {"comment": "no rating"}]:
        response = await shop.client.post(url, json=bad, headers=bob)
        assert response.status_code == 422, (bad, response.text)
    assert await shop.pool.fetchval("SELECT count(*) FROM reviews") == 1
