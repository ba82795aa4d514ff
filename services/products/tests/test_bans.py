"""UserBanned on the immediate lane: from then on this service refuses the user's unexpired tokens."""

from shop_common.testing import bearer
from shop_events.catalogue import UserBanned


async def test_a_banned_users_tokens_are_refused_at_once(shop, make_token):
    product = await shop.add_product()
    url = f"/api/products/{product['id']}/reviews"
    mallory, alice = bearer(make_token(66)), bearer(make_token(11))
    banned_admin = bearer(make_token(2, role="admin"))
    assert (await shop.client.patch(f"/api/products/{product['id']}", json={"stock": 3}, headers=banned_admin)).status_code == 200

    await shop.deliver(UserBanned(user_id=66, reason="spam", banned_by=1), UserBanned(user_id=2, reason="x", banned_by=1))

    async def refused(headers: dict) -> bool:  # a product that does not exist: 404 unless banned, no review written
        response = await shop.client.post("/api/products/999999/reviews", json={"rating": 1, "comment": "x"}, headers=headers)
        return response.status_code == 403 and response.json() == {"detail": "this account is banned"}

    assert await refused(mallory) and await refused(banned_admin)
    assert (await shop.client.post(url, json={"rating": 1, "comment": "Spam."}, headers=mallory)).status_code == 403
    patch = await shop.client.patch(f"/api/products/{product['id']}", json={"stock": 1}, headers=banned_admin)
    assert patch.status_code == 403
    assert (await shop.client.post(url, json={"rating": 5, "comment": "Great."}, headers=alice)).status_code == 201
    assert await shop.stock(product["id"]) == 3
    assert await shop.pool.fetchval("SELECT count(*) FROM reviews WHERE user_id = 66") == 0
