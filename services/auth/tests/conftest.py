"""Fixtures of the auth tests: a running auth service on a fresh database and vhost, and a client that speaks its API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from shop_common.testing import bearer, running

from auth.main import create_app

ADMIN_EMAIL = "boss@example.com"
ADMIN_PASSWORD = "boss-password-1"


@pytest.fixture
def auth_env(service_env: pytest.MonkeyPatch, database_url: str) -> pytest.MonkeyPatch:
    service_env.setenv("AUTH_DATABASE_URL", database_url)
    service_env.setenv("ADMIN_EMAIL", ADMIN_EMAIL)
    service_env.setenv("ADMIN_PASSWORD", ADMIN_PASSWORD)
    return service_env


class AuthClient:
    """The calls a shop client makes, returning raw responses so tests can check status codes."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def register(self, email: str, password: str = "correct-horse", **extra: object) -> httpx.Response:
        return await self.http.post("/api/auth/register", json={"email": email, "password": password, **extra})

    async def login(self, email: str, password: str = "correct-horse") -> httpx.Response:
        return await self.http.post("/api/auth/login", json={"email": email, "password": password})

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.http.post("/api/auth/refresh", json={"refresh_token": refresh_token})

    async def me(self, access_token: str) -> httpx.Response:
        return await self.http.get("/api/auth/me", headers=bearer(access_token))

    async def ban(self, admin_token: str, user_id: int, reason: str = "spam") -> httpx.Response:
        return await self.http.post(f"/api/auth/users/{user_id}/ban", json={"reason": reason}, headers=bearer(admin_token))

    async def customer(self, email: str, password: str = "correct-horse") -> tuple[int, dict]:
        """Registers and logs in; returns the user id and the token pair."""
        registered = await self.register(email, password)
        assert registered.status_code == 201, registered.text
        logged_in = await self.login(email, password)
        assert logged_in.status_code == 200, logged_in.text
        return registered.json()["id"], logged_in.json()

    async def admin_token(self) -> str:
        response = await self.login(ADMIN_EMAIL, ADMIN_PASSWORD)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]


@pytest.fixture
async def auth(auth_env: pytest.MonkeyPatch) -> AsyncIterator[AuthClient]:
    async with running(create_app()) as http:
        yield AuthClient(http)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct look into auth's database, for what a client can't see (hashes, outbox rows)."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
