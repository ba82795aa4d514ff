"""Who sees which orders, listing newest first (by offset or by cursor), and a banned user refused at once."""

import json

from shop_common.bans import LISTENER_NAME
from shop_common.testing import bearer, eventually
from shop_events.catalogue import UserBanned

from orders import db

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
    for bad in ("limit=0", "limit=201", "offset=-1", "limit=x", "before=0", "before=99999999999999999999"):
        assert (await orders.client.get(f"/api/orders?{bad}", headers=bearer(ada))).status_code == 422

    assert (await orders.client.get(f"/api/orders/{adas[0]}", headers=bearer(ada))).status_code == 200
    assert (await orders.client.get(f"/api/orders/{adas[0]}", headers=bearer(admin))).json()["user_id"] == 7
    hidden = await orders.client.get(f"/api/orders/{adas[0]}", headers=bearer(bob))
    assert hidden.status_code == 404 and hidden.json() == {"detail": "order not found"}
    assert (await orders.client.get("/api/orders/999999", headers=bearer(ada))).status_code == 404
    assert (await orders.client.get("/api/orders/99999999999999999999", headers=bearer(ada))).status_code == 422
    assert (await orders.client.get("/api/orders")).status_code == 401
    assert (await orders.client.get("/api/orders", headers=bearer("not-a-token"))).status_code == 401


async def test_pages_by_cursor_are_the_pages_by_offset(orders, make_token):
    """`before` (the last id of the page before) walks the same pages as `offset`, for a customer and for an
    admin; left out, a call answers as it always did."""
    await orders.add_product(1, "2.00")
    ada, bob, admin = make_token(7), make_token(8), make_token(1, role="admin")
    for i in range(12):
        assert (await orders.place(ada if i % 3 else bob, ITEMS)).status_code == 201
    pages = {}
    for token in (ada, admin):
        by_offset = pages[token] = []
        for offset in range(0, 20, 5):
            page = await orders.client.get("/api/orders", params={"limit": 5, "offset": offset}, headers=bearer(token))
            by_offset.append([o["id"] for o in page.json()])
        by_cursor, before = [], None
        for _ in by_offset:
            params = {"limit": 5} | ({"before": before} if before else {})
            page = [o["id"] for o in (await orders.client.get("/api/orders", params=params, headers=bearer(token))).json()]
            by_cursor.append(page)
            before = page[-1] if page else before
        assert by_cursor == by_offset and sum(map(len, by_offset)) == (8 if token == ada else 12)
    adas = [i for page in pages[ada] for i in page]
    skip = await orders.client.get("/api/orders", params={"limit": 2, "offset": 1, "before": adas[2]}, headers=bearer(ada))
    assert [o["id"] for o in skip.json()] == adas[4:6]


async def test_a_customers_page_is_read_from_their_own_index_even_with_a_generic_plan(orders):
    """A statement asyncpg keeps prepared may be planned once for every value (a generic plan): the customer's
    page must still come from orders_by_user, newest first, not from every order of the shop."""
    await orders.pool.execute(
        "INSERT INTO orders (user_id, email, status, total) SELECT g % 500, 'x@example.com', 'pending', 1.00"
        " FROM generate_series(1, 20000) g"
    )
    await orders.pool.execute("ANALYZE orders")
    async with orders.pool.acquire() as conn:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        try:
            plan = json.dumps(json.loads(await conn.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE {await prepared(conn, db.CUSTOMERS_PAGE)} (7, {db.NO_CURSOR}, 50, 0)"
            )))
        finally:
            await conn.execute("DEALLOCATE ALL")
            await conn.execute("RESET plan_cache_mode")
    assert '"Index Name": "orders_by_user"' in plan and '"Sort"' not in plan, plan


async def prepared(conn, sql: str) -> str:
    await conn.execute(f"PREPARE customers_page (bigint, bigint, int, int) AS {sql}")
    return "customers_page"


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


async def refused(orders, token: str) -> bool:
    answer = await orders.client.get("/api/orders", headers=bearer(token))
    assert answer.status_code in (200, 403), answer.text
    return answer.status_code == 403 and answer.json() == {"detail": "this account is banned"}


async def listening(orders, other_than: int = 0) -> int | None:
    """The backend of this process's ban list connection (shop_common.bans), if it is there."""
    return await orders.pool.fetchval(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND pid <> $2",
        LISTENER_NAME, other_than,
    )


async def test_a_ban_committed_by_another_process_is_refused_here_too(orders, make_token):
    """Another process of orders handled the UserBanned (its row is committed; this process's handler never ran):
    this process hears of it through the table's trigger (its ban list's notification) and refuses the token."""
    ada, bob = make_token(7), make_token(8)
    await eventually(lambda: listening(orders))
    assert not await refused(orders, ada)

    await orders.pool.execute("INSERT INTO banned_users (user_id, reason) VALUES (7, 'fraud')")  # the other's commit

    await eventually(lambda: refused(orders, ada), timeout=5, interval=0.005)
    assert not await refused(orders, bob)


async def test_a_ban_committed_while_the_ban_list_connection_is_cut_is_not_missed(orders, make_token):
    """PostgreSQL ends the listening connection (pg_terminate_backend, as a restart or an operator would), and a
    ban is committed by another process while it is gone: its notification reaches nobody here. The process
    asks the table until it is back, then reads every ban again, so the token is refused all the same; and
    bans after that arrive by notification again."""
    ada, bob, eve = make_token(7), make_token(8), make_token(9)
    first = await eventually(lambda: listening(orders))
    assert await orders.pool.fetchval("SELECT pg_terminate_backend($1)", first)
    await orders.pool.execute("INSERT INTO banned_users (user_id, reason) VALUES (7, 'fraud')")

    await eventually(lambda: refused(orders, ada), timeout=5, interval=0.005)
    await eventually(lambda: listening(orders, other_than=first), timeout=10)
    await orders.pool.execute("INSERT INTO banned_users (user_id, reason) VALUES (8, 'spam')")
    await eventually(lambda: refused(orders, bob), timeout=5, interval=0.005)
    assert await refused(orders, ada) and not await refused(orders, eve)
