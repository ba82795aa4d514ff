"""GET /api/auth/users and POST /api/auth/users/{id}/ban: admin only; a ban blocks login and refresh and
publishes UserBanned once."""

from shop_common.testing import bearer
from shop_events.testing import EventProbe


async def test_admins_list_users_with_limit_and_offset(auth):
    for n in range(3):
        await auth.register(f"user{n}@example.com")
    admin = await auth.admin_token()
    everyone = await auth.http.get("/api/auth/users", headers=bearer(admin))
    assert everyone.status_code == 200
    emails = [u["email"] for u in everyone.json()]
    assert emails == ["boss@example.com", "user0@example.com", "user1@example.com", "user2@example.com"]
    page = await auth.http.get("/api/auth/users?limit=2&offset=1", headers=bearer(admin))
    assert [u["email"] for u in page.json()] == ["user0@example.com", "user1@example.com"]
    assert (await auth.http.get("/api/auth/users?limit=501", headers=bearer(admin))).status_code == 422
    assert (await auth.http.get("/api/auth/users?offset=-1", headers=bearer(admin))).status_code == 422


async def test_customers_and_strangers_can_not_list_or_ban(auth):
    user_id, pair = await auth.customer("mo@example.com")
    assert (await auth.http.get("/api/auth/users", headers=bearer(pair["access_token"]))).status_code == 403
    assert (await auth.http.get("/api/auth/users")).status_code == 401
    assert (await auth.ban(pair["access_token"], 1)).status_code == 403
    assert (await auth.http.post(f"/api/auth/users/{user_id}/ban", json={"reason": "x"})).status_code == 401


async def test_a_ban_blocks_login_and_refresh_at_once_and_publishes_userbanned_once(auth, amqp_url, db):
    user_id, pair = await auth.customer("nina@example.com")
    admin = await auth.admin_token()
    admin_id = int((await auth.me(admin)).json()["id"])
    async with EventProbe(amqp_url, "user.banned", "user.registered") as probe:
        response = await auth.http.post(
            f"/api/auth/users/{user_id}/ban", json={"reason": "fraud"}, headers={**bearer(admin), "X-Request-ID": "ban-1"}
        )
        assert response.status_code == 200 and response.json() == {"id": user_id, "banned": True}

        banned_login = await auth.login("nina@example.com")
        assert banned_login.status_code == 403 and banned_login.json() == {"detail": "this account is banned"}
        assert (await auth.login("nina@example.com", "wrong-password")).status_code == 401
        assert (await auth.refresh(pair["refresh_token"])).status_code == 401
        assert (await auth.me(pair["access_token"])).json()["banned"] is True
        assert await db.fetchval("SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL", user_id) == 0

        again = await auth.ban(admin, user_id, "fraud, again")
        assert again.status_code == 200 and again.json() == {"id": user_id, "banned": True}
        # A later event on the same exchange: once it has arrived, a second UserBanned would have too.
        await auth.register("marker@example.com")
        await probe.wait_for("UserRegistered")
        [body] = probe.bodies("UserBanned")
    banned_message = next(m for m in probe.messages if m.type == "UserBanned")
    assert banned_message.routing_key == "user.banned"
    assert body["data"] == {
        "user_id": user_id, "reason": "fraud", "banned_by": admin_id, "email": "nina@example.com", "name": None,
    }
    assert body["correlation_id"] == "ban-1"


async def test_ban_errors(auth):
    admin = await auth.admin_token()
    admin_id = (await auth.me(admin)).json()["id"]
    user_id, _ = await auth.customer("omar@example.com")
    unknown = await auth.ban(admin, 999_999)
    assert unknown.status_code == 404 and unknown.json() == {"detail": "no user 999999"}
    myself = await auth.ban(admin, admin_id)
    assert myself.status_code == 409 and "themself" in myself.json()["detail"]
    no_reason = await auth.http.post(f"/api/auth/users/{user_id}/ban", json={}, headers=bearer(admin))
    assert no_reason.status_code == 422
    blank_reason = await auth.ban(admin, user_id, "   ")
    assert blank_reason.status_code == 422
    assert (await auth.ban(admin, 0)).status_code == 422
    assert (await auth.me(admin)).json()["banned"] is False


async def test_a_banned_admins_unexpired_token_no_longer_works_for_admin_calls(auth, db):
    deputy_id, deputy = await auth.customer("deputy@example.com")
    await db.execute("UPDATE users SET role = 'admin' WHERE id = $1", deputy_id)
    deputy_token = (await auth.login("deputy@example.com")).json()["access_token"]
    assert (await auth.http.get("/api/auth/users", headers=bearer(deputy_token))).status_code == 200
    assert (await auth.ban(await auth.admin_token(), deputy_id)).status_code == 200
    assert (await auth.http.get("/api/auth/users", headers=bearer(deputy_token))).status_code == 403
