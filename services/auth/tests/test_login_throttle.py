"""Failed logins per account and client address: five are free, then each try waits (429 with Retry-After),
before any password hash is spent; concurrent guesses are all counted; a success forgets them; an unknown email
is treated alike; a guesser's address waiting does not keep the account's owner out."""

from __future__ import annotations

import asyncio

WRONG = "not-the-password"


async def test_after_five_failures_even_the_right_password_waits_retry_after_then_gets_in(auth):
    await auth.customer("gina@example.com")
    for _ in range(5):
        assert (await auth.login("gina@example.com", WRONG)).status_code == 401
    refused = await auth.login("gina@example.com")  # the right password: a guesser must not learn it now
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert "too many failed logins" in refused.json()["detail"]

    await asyncio.sleep(int(refused.headers["Retry-After"]))  # what a client is told to do
    assert (await auth.login("gina@example.com")).status_code == 200
    # The success forgot the failures: the next wrong one is an ordinary 401.
    assert (await auth.login("gina@example.com", WRONG)).status_code == 401


async def test_concurrent_guesses_are_each_counted(auth, db):
    await auth.customer("hal@example.com")
    answers = await asyncio.gather(*(auth.login("hal@example.com", WRONG) for _ in range(20)))
    assert sorted(a.status_code for a in answers) == [401] * 5 + [429] * 15
    # Refused tries are not charged: the lockout stays the first one's.
    assert await db.fetchval("SELECT failures FROM login_attempts_by_client WHERE email = 'hal@example.com'") == 5


async def test_an_unknown_email_is_throttled_like_a_known_one(auth):
    answers = [await auth.login("nobody-here@example.com", WRONG) for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 5 + [429]


async def test_a_guesser_who_keeps_trying_from_one_address_does_not_keep_the_owner_out(auth):
    """The address is the one the gateway saw: the last of X-Forwarded-For, which nginx appends."""
    await auth.customer("ines@example.com")
    guesser, owner = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "10.9.9.9, 198.51.100.2"}

    async def login(password: str, headers: dict[str, str]) -> int:
        answer = await auth.http.post("/api/auth/login", json={"email": "ines@example.com", "password": password}, headers=headers)
        return answer.status_code

    assert [await login(WRONG, guesser) for _ in range(7)] == [401] * 5 + [429] * 2
    assert await login("correct-horse", owner) == 200
    assert await login("correct-horse", guesser) == 429  # the owner's success does not free the guesser's address
