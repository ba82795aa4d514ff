"""POST /api/auth/register against the real database and broker: 201, 409, 422, and UserRegistered."""

from shop_events.testing import EventProbe


async def test_a_customer_registers_and_userregistered_reaches_a_bound_queue(auth, amqp_url, db):
    async with EventProbe(amqp_url, "user.registered") as probe:
        response = await auth.http.post(
            "/api/auth/register",
            json={"email": "Ann.Lee@Example.COM", "password": "correct-horse", "name": "Ann", "role": "admin"},
            headers={"X-Request-ID": "signup-1"},
        )
        assert response.status_code == 201, response.text
        user = response.json()
        # The role in the body is ignored: whoever registers is a customer.
        assert {k: user[k] for k in ("email", "name", "role", "banned")} == {
            "email": "ann.lee@example.com", "name": "Ann", "role": "customer", "banned": False,
        }
        assert "password" not in response.text and "correct-horse" not in response.text
        [body] = await probe.wait_for("UserRegistered")
    assert probe.messages[0].routing_key == "user.registered"
    assert body["data"] == {"user_id": user["id"], "email": "ann.lee@example.com", "name": "Ann"}
    assert body["producer"] == "auth" and body["correlation_id"] == "signup-1"
    stored = await db.fetchval("SELECT password_hash FROM users WHERE id = $1", user["id"])
    assert stored.startswith("$argon2id$") and "correct-horse" not in stored


async def test_the_name_is_optional(auth):
    response = await auth.register("bob@example.com")
    assert response.status_code == 201 and response.json()["name"] is None


async def test_an_email_is_taken_whatever_its_case(auth, db):
    assert (await auth.register("carol@example.com")).status_code == 201
    response = await auth.register("CAROL@example.com", "another-password")
    assert response.status_code == 409 and "already registered" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM users WHERE email = 'carol@example.com'") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE event_type = 'UserRegistered'") == 1


async def test_bad_input_is_422_with_a_clear_detail_and_never_echoes_the_password(auth, db):
    short = await auth.register("dave@example.com", "seven77")
    assert short.status_code == 422
    [error] = short.json()["detail"]
    assert error["loc"] == ["body", "password"] and "at least 8" in error["msg"]
    assert "seven77" not in short.text

    too_long = await auth.register("dave@example.com", "x" * 129)
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["body", "password"]

    for email in ("not-an-email", "dave@", "", "dave@localhost"):
        bad = await auth.register(email)
        assert bad.status_code == 422, email
        assert bad.json()["detail"][0]["loc"] == ["body", "email"] and "email" in bad.json()["detail"][0]["msg"]

    missing = await auth.http.post("/api/auth/register", json={"email": "dave@example.com"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "password"]

    # Nothing was stored or published for any of them (the admin is the only user).
    assert await db.fetchval("SELECT count(*) FROM users") == 1
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
