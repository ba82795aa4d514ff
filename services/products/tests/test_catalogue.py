"""The catalogue over HTTP: admins create and change products, anyone reads them; events go out."""

from shop_common.testing import bearer
from shop_events.testing import EventProbe


async def test_an_admin_creates_a_product_anyone_reads_it_and_product_created_goes_out(shop):
    async with EventProbe(shop.amqp_url, "product.created") as probe:
        response = await shop.client.post(
            "/api/products",
            json={"name": "Kettle", "description": "1.7 l", "price": "19.90", "stock": 12, "supplier_email": "kettles@example.com"},
            headers={**shop.admin, "X-Request-ID": "create-1"},
        )
        assert response.status_code == 201, response.text
        created = response.json()
        [event] = await probe.wait_for("ProductCreated")

    product_id = created["id"]
    public = {
        "id": product_id, "name": "Kettle", "description": "1.7 l", "price": "19.90", "stock": 12,
        "low_stock_threshold": 5, "rating_avg": None, "rating_count": 0,
    }
    assert created == {**public, "supplier_email": "kettles@example.com"}
    assert await shop.product(product_id) == public  # the public shape has no supplier
    assert event["correlation_id"] == "create-1" and event["producer"] == "products"
    assert event["data"] == {
        "product_id": product_id, "name": "Kettle", "price": "19.90", "stock": 12, "supplier_email": "kettles@example.com",
    }


async def test_the_list_pages_with_limit_and_offset(shop):
    ids = [(await shop.add_product(name=f"Mug {n}", price=f"{n}.50"))["id"] for n in range(1, 6)]
    everything = (await shop.client.get("/api/products")).json()
    assert [p["id"] for p in everything] == ids
    page = (await shop.client.get("/api/products", params={"limit": 2, "offset": 1})).json()
    assert [(p["id"], p["name"], p["price"]) for p in page] == [(ids[1], "Mug 2", "2.50"), (ids[2], "Mug 3", "3.50")]
    assert (await shop.client.get("/api/products", params={"offset": 10})).json() == []
    assert (await shop.client.get("/api/products", params={"limit": 0})).status_code == 422
    assert (await shop.client.get("/api/products", params={"limit": 1000})).status_code == 422


async def test_only_an_admin_with_a_valid_token_creates_or_changes(shop, make_token):
    body = {"name": "Kettle", "price": "19.99", "stock": 1}
    customer = bearer(make_token(7))
    assert (await shop.client.post("/api/products", json=body)).status_code == 401
    assert (await shop.client.post("/api/products", json=body, headers=bearer("not-a-jwt"))).status_code == 401
    assert (await shop.client.post("/api/products", json=body, headers=customer)).status_code == 403
    product = await shop.add_product()
    answer = await shop.client.patch(f"/api/products/{product['id']}", json={"price": "1.00"}, headers=customer)
    assert answer.status_code == 403 and answer.json() == {"detail": "admin only"}
    assert (await shop.product(product["id"]))["price"] == "19.99"
    assert (await shop.client.get("/api/products")).json() == [await shop.product(product["id"])]


async def test_invalid_products_are_refused_with_422(shop):
    good = {"name": "Kettle", "price": "19.99", "stock": 3}
    for bad in [
        {**good, "price": "0"},
        {**good, "price": "-1.00"},
        {**good, "price": 19.99},  # a float is already inexact
        {**good, "price": "19.999"},
        {**good, "price": "a lot"},
        {**good, "stock": -1},
        {**good, "low_stock_threshold": -1},
        {**good, "name": "   "},
        {**good, "supplier_email": "not-an-email"},
        {**good, "colour": "red"},
        {"name": "Kettle", "stock": 3},
    ]:
        response = await shop.client.post("/api/products", json=bad, headers=shop.admin)
        assert response.status_code == 422, (bad, response.text)
        assert "detail" in response.json()
    assert (await shop.client.get("/api/products")).json() == []


async def test_patch_changes_only_what_is_sent_and_product_updated_goes_out(shop):
    product = await shop.add_product(name="Kettle", description="old", price="19.99", stock=10, supplier_email="a@example.com")
    async with EventProbe(shop.amqp_url, "product.updated") as probe:
        response = await shop.client.patch(
            f"/api/products/{product['id']}", json={"price": "17.50", "description": "new"}, headers=shop.admin
        )
        assert response.status_code == 200, response.text
        [event] = await probe.wait_for("ProductUpdated")
    assert response.json() == {**product, "price": "17.50", "description": "new"}
    assert event["data"] == {
        "product_id": product["id"], "name": "Kettle", "price": "17.50", "stock": 10, "supplier_email": "a@example.com",
    }

    restocked = await shop.client.patch(
        f"/api/products/{product['id']}",
        json={"stock": 40, "low_stock_threshold": 8, "name": "Steel kettle", "supplier_email": None},
        headers=shop.admin,
    )
    assert restocked.status_code == 200
    assert restocked.json() == {
        **product, "name": "Steel kettle", "description": "new", "price": "17.50", "stock": 40,
        "low_stock_threshold": 8, "supplier_email": None,
    }


async def test_patch_refuses_unknown_products_and_bad_values(shop):
    product = await shop.add_product()
    assert (await shop.client.patch("/api/products/999999", json={"stock": 1}, headers=shop.admin)).status_code == 404
    assert (await shop.client.get("/api/products/999999")).status_code == 404
    for bad in [{"price": "0.00"}, {"stock": -3}, {"price": None}, {"name": ""}, {}, {"rating_avg": "5.00"}]:
        response = await shop.client.patch(f"/api/products/{product['id']}", json=bad, headers=shop.admin)
        assert response.status_code == 422, (bad, response.text)
    assert await shop.product(product["id"]) == {k: v for k, v in product.items() if k != "supplier_email"}
