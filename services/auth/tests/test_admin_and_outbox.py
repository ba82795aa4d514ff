"""The first admin at start (created, updated, replica-safe), and an event committed while no relay ran."""

import asyncio

from shop_common.testing import eventually, running
from shop_events.testing import EventProbe

from auth.main import create_app


async def test_the_admin_is_created_at_start(auth):
    response = await auth.login("BOSS@example.com", "boss-password-1")
    assert response.status_code == 200
    me = (await auth.me(response.json()["access_token"])).json()
    assert me["role"] == "admin" and me["name"] == "Admin" and me["email"] == "boss@example.com"


async def test_a_restart_updates_the_admins_password_and_promotes_an_existing_account(auth_env, db):
    async with running(create_app()) as client:
        registered = await client.post("/api/auth/register", json={"email": "pat@example.com", "password": "customer-pw"})
        assert registered.status_code == 201 and registered.json()["role"] == "customer"
    auth_env.setenv("ADMIN_EMAIL", "Pat@Example.com")
    auth_env.setenv("ADMIN_PASSWORD", "a-new-password")
    async with running(create_app()) as client:
        old = await client.post("/api/auth/login", json={"email": "pat@example.com", "password": "customer-pw"})
        new = await client.post("/api/auth/login", json={"email": "pat@example.com", "password": "a-new-password"})
        assert old.status_code == 401 and new.status_code == 200
        boss = await client.post("/api/auth/login", json={"email": "boss@example.com", "password": "boss-password-1"})
        assert boss.status_code == 200  # the earlier admin stays an admin
    assert await db.fetchval("SELECT role FROM users WHERE email = 'pat@example.com'") == "admin"
    assert await db.fetchval("SELECT count(*) FROM users") == 2
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1  # the customer's UserRegistered, none for the admin


async def test_two_replicas_starting_at_once_make_one_admin(auth_env, db):
    async def start_and_log_in() -> int:
        async with running(create_app()) as client:
            response = await client.post("/api/auth/login", json={"email": "boss@example.com", "password": "boss-password-1"})
            return response.status_code

    assert await asyncio.gather(start_and_log_in(), start_and_log_in()) == [200, 200]
    assert await db.fetchval("SELECT count(*) FROM users WHERE role = 'admin'") == 1


async def test_an_event_committed_while_no_relay_ran_is_published_after_restart(auth_env, amqp_url, db):
    auth_env.setenv("ROLES", "api")  # the process "crashes" after commit, before any publish
    async with EventProbe(amqp_url, "user.registered") as probe:
        async with running(create_app()) as client:
            registered = await client.post("/api/auth/register", json={"email": "quinn@example.com", "password": "correct-horse"})
            assert registered.status_code == 201
        assert await db.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NULL AND event_type = 'UserRegistered'") == 1
        assert probe.bodies() == []

        auth_env.setenv("ROLES", "api,consumers,relay")
        async with running(create_app()):
            [body] = await probe.wait_for("UserRegistered")
            # the relay marks the row sent once the broker confirmed it, a moment after the probe has it
            await eventually(lambda: db.fetchval("SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL"))
    assert body["data"] == {"user_id": registered.json()["id"], "email": "quinn@example.com", "name": None}
