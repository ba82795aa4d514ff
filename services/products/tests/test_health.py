"""The products service starts on a fresh database and vhost, migrates, and answers its health check."""

from shop_common.testing import running

from products.main import create_app


async def test_starts_and_is_healthy(service_env, database_url):
    service_env.setenv("PRODUCTS_DATABASE_URL", database_url)
    async with running(create_app()) as client:
        response = await client.get("/api/products/health", headers={"X-Request-ID": "probe-1"})
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        assert response.headers["x-request-id"] == "probe-1"
        assert (await client.get("/api/products/openapi.json")).status_code == 200
