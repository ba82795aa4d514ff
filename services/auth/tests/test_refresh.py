"""POST /api/auth/refresh: rotation, single use, reuse revokes the login's family, expiry, tokens stored hashed."""

import asyncio
import hashlib


async def test_a_refresh_token_gives_a_new_pair_once(auth, db):
    _, first = await auth.customer("ivy@example.com")
    rotated = await auth.refresh(first["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["token_type"] == "bearer" and second["expires_in"] == 900
    assert second["refresh_token"] != first["refresh_token"]
    assert (await auth.me(second["access_token"])).json()["email"] == "ivy@example.com"
    # Only the sha256 of a refresh token is stored.
    stored = {r["token_hash"] for r in await db.fetch("SELECT token_hash FROM refresh_tokens")}
    assert hashlib.sha256(second["refresh_token"].encode()).hexdigest() in stored
    assert second["refresh_token"] not in stored and first["refresh_token"] not in stored


async def test_reusing_a_spent_token_is_401_and_revokes_that_login_only(auth):
    _, phone = await auth.customer("jack@example.com")
    laptop = (await auth.login("jack@example.com")).json()
    phone_next = (await auth.refresh(phone["refresh_token"])).json()

    replay = await auth.refresh(phone["refresh_token"])
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    # The whole family is gone, the token rotated from it too ...
    assert (await auth.refresh(phone_next["refresh_token"])).status_code == 401
    # ... but the other login lives on.
    assert (await auth.refresh(laptop["refresh_token"])).status_code == 200


async def test_two_refreshes_racing_with_one_token_get_one_pair_and_revoke_the_family(auth):
    _, pair = await auth.customer("kim@example.com")
    responses = await asyncio.gather(auth.refresh(pair["refresh_token"]), auth.refresh(pair["refresh_token"]))
    assert sorted(r.status_code for r in responses) == [200, 401]
    [winner] = [r.json() for r in responses if r.status_code == 200]
    assert (await auth.refresh(winner["refresh_token"])).status_code == 401


async def test_expired_and_unknown_refresh_tokens_are_401(auth, db):
    _, pair = await auth.customer("lee@example.com")
    await db.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    expired = await auth.refresh(pair["refresh_token"])
    assert expired.status_code == 401 and expired.json()["detail"] == "refresh token expired"
    assert (await auth.refresh("made-up-token")).status_code == 401
    assert (await auth.http.post("/api/auth/refresh", json={})).status_code == 422
