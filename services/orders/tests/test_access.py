"""Who sees which orders, listing newest first, and a banned user refused at once."""

from shop_common.testing import bearer
from shop_events.catalogue import UserBanned

ITEMS = [{"product_id": 1, "quantity": 1}]


async def test_customers_see_their_own_orders_and_admins_see_all(orders, make_token):
    await orders.add_product(1, "2.00")
    ada, bob, admin = make_token(7), make_token(8), make_token(1, role="admin")
    adas = [(await orders.place(ada, ITEMS)).json()["id"] for _ in range(3)]
    [bobs] = [(await orders.place(bob, ITEMS)).json()["id"]]

    listed = await orders.client.get("/api/orders", headers=bearer(ada))
    assert listed.status_code == 200 and [o["id"] for o in listed.json()] == adas[::-1]
    page = await orders.client.get("/api/orders?limit=2&offset=1", headers=bearer(ada))
    assert [o["id"] for o in page.json()] == adas[::-1][1:3]
    everyone = await orders.client.get("/api/orders", headers=bearer(admin))
    assert [o["id"] for o in everyone.json()] == [bobs, *adas[::-1]]
    for bad in ("limit=0", "limit=201", "offset=-1", "limit=x"):
        assert (await orders.client.get(f"/api/orders?{bad}", headers=bearer(ada))).status_code == 422

    assert (await orders.client.get(f"/api/orders/{adas[0]}", headers=bearer(ada))).status_code == 200
    assert (await orders.client.get(f"/api/orders/{adas[0]}", headers=bearer(admin))).json()["user_id"] == 7
    hidden = await orders.client.get(f"/api/orders/{adas[0]}", headers=bearer(bob))
    assert hidden.status_code == 404 and hidden.json() == {"detail": "order not found"}
    assert (await orders.client.get("/api/orders/999999", headers=bearer(ada))).status_code == 404
    assert (await orders.client.get("/api/orders/99999999999999999999", headers=bearer(ada))).status_code == 422
    assert (await orders.client.get("/api/orders")).status_code == 401
    assert (await orders.client.get("/api/orders", headers=bearer("not-a-token"))).status_code == 401


async def test_a_banned_user_is_refused_at_once(orders, make_token):
    await orders.add_product(1, "2.00")
    ada = make_token(7)
    order = (await orders.place(ada, ITEMS)).json()
    await orders.deliver(UserBanned(user_id=7, reason="fraud", banned_by=1))
    assert (await orders.client.get("/api/orders", headers=bearer(ada))).status_code == 403
    for call in (
        orders.client.get(f"/api/orders/{order['id']}", headers=bearer(ada)),
        orders.place(ada, ITEMS),
        orders.client.post(f"/api/orders/{order['id']}/pay", json={"payment_token": "tok_visa"}, headers=bearer(ada)),
    ):
        answer = await call
        assert answer.status_code == 403 and answer.json() == {"detail": "this account is banned"}
    assert (await orders.place(make_token(8), ITEMS)).status_code == 201  # others are not affected
