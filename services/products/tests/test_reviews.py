"""Reviews: posted pending, moderated by this service's own handler (its ProductReviewed handed to it by the kit)."""

from shop_common.testing import bearer
from shop_events.catalogue import ProductReviewed


async def test_a_clean_review_is_published_and_counted_a_review_with_a_link_is_rejected(shop, make_token):
    product = await shop.add_product()
    pid = product["id"]
    alice, bob, carol = bearer(make_token(11)), bearer(make_token(12)), bearer(make_token(13))
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
    assert len(await shop.moderate()) == 2
    await shop.client.post(f"/api/products/{pid}/reviews", json={"rating": 1, "comment": "Leaks."}, headers=carol)
    assert len(await shop.moderate()) == 1  # the third; the first two again are copies, skipped

    reviewed = (await shop.kit.published("ProductReviewed"))[0]
    assert reviewed.correlation_id == "review-1"
    assert reviewed.data == {"review_id": posted.json()["id"], "product_id": pid, "user_id": 11, "rating": 4, "comment": "Boils fast."}
    moderated = await shop.kit.published("ReviewModerated")
    outcomes = {e.data["review_id"]: e.data for e in moderated}
    assert outcomes[posted.json()["id"]] == {
        "review_id": posted.json()["id"], "product_id": pid, "user_id": 11, "rating": 4, "status": "published"
    }
    assert outcomes[spam.json()["id"]]["status"] == "rejected"
    assert moderated[0].correlation_id == "review-1"

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

    first = await shop.client.post(f"/api/products/{pid}/reviews", json={"rating": 5, "comment": "Lovely."}, headers=bearer(make_token(11)))
    await shop.moderate()
    [reviewed] = await shop.kit.published("ProductReviewed")
    # the same review announced again under a new event id: already moderated, counted once
    await shop.deliver(ProductReviewed(**reviewed.data))
    second = await shop.client.post(f"/api/products/{pid}/reviews", json={"rating": 2, "comment": "Loud."}, headers=bearer(make_token(12)))
    assert second.status_code == 201, second.text
    await shop.moderate()
    moderated = [e.data["review_id"] for e in await shop.kit.published("ReviewModerated")]
    assert moderated == [first.json()["id"], second.json()["id"]], "the repeated announcement was moderated (and published) again"
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
