"""Moderation of reviews, and stock running low reaching the staff."""

from __future__ import annotations

from shop import eventually, unique_email


async def test_a_review_with_a_link_never_shows_and_a_clean_one_does(shop):
    product = await shop.product(stock=10)
    spammer, customer = await shop.customer(), await shop.customer()  # one review per customer and product
    spam = await shop.http.post(
        f"/api/products/{product['id']}/reviews",
        json={"rating": 5, "comment": "cheap pills at https://spam.example.com"},
        headers=spammer.auth,
    )
    assert spam.status_code == 201 and spam.json()["status"] == "pending"
    clean = await shop.http.post(
        f"/api/products/{product['id']}/reviews", json={"rating": 3, "comment": "does the job"}, headers=customer.auth
    )
    assert clean.status_code == 201 and clean.json()["status"] == "pending"

    async def published():
        shown = (await shop.http.get(f"/api/products/{product['id']}/reviews")).json()
        return shown if shown else None

    shown = await eventually(published)
    # The clean review was moderated after the spam one (same queue), so the spam one is settled by now.
    assert [r["id"] for r in shown] == [clean.json()["id"]]
    assert "spam" not in str(shown)
    after = (await shop.http.get(f"/api/products/{product['id']}")).json()
    assert (after["rating_avg"], after["rating_count"]) == ("3.00", 1)  # money-like: a two-decimal string


async def test_stock_low_reaches_the_staff_alerts_and_the_supplier(shop):
    supplier = unique_email("supplier")
    product = await shop.product(stock=5, threshold=3, supplier_email=supplier)
    customer = await shop.customer()
    order = (await shop.place(customer, (product["id"], 3))).json()
    await shop.status_becomes(customer, order["id"], "confirmed")
    assert await shop.stock_of(product["id"]) == 2

    async def alerts():
        # "(product #12)": a bare "#12" is also in "Ship order #123" and in product #120's alerts
        found = [a for a in await shop.staff_alerts() if f"(product #{product['id']})" in a["subject"]]
        kinds = sorted(a["type"] for a in found)
        return kinds if kinds == ["stock_low", "supplier_reorder"] else None

    await eventually(alerts)
    await shop.mail(supplier, f"#{product['id']}")
    # Staff alerts are for staff only.
    assert (await shop.http.get("/api/notifications/admin", headers=customer.auth)).status_code == 403
