"""Signing with auth's private key, verifying with the shared helper and the public key; argon2 hashes."""

import asyncio
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from shop_common.auth import InvalidToken, verify_token

from auth import passwords
from auth.passwords import hash_password, needs_rehash, password_matches
from auth.tokens import TokenIssuer, new_refresh_token

FIFTEEN_MINUTES = timedelta(minutes=15)
TWO_WEEKS = timedelta(days=14)


def issuer_of(jwt_keys) -> TokenIssuer:
    return TokenIssuer.from_files(jwt_keys[0], jwt_keys[1], FIFTEEN_MINUTES, TWO_WEEKS)


def test_an_access_token_verifies_with_the_public_key_alone(jwt_keys):
    token = issuer_of(jwt_keys).access_token(user_id=42, email="ann@example.com", role="customer")
    principal = verify_token(token, jwt_keys[1].read_text())
    assert (principal.id, principal.email, principal.role) == (42, "ann@example.com", "customer")
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(token, jwt_keys[1].read_text(), algorithms=["EdDSA"])
    assert set(claims) == {"sub", "email", "role", "exp", "iat", "jti"}
    assert claims["exp"] - claims["iat"] == 900


def test_an_expired_access_token_is_refused(jwt_keys):
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    token = issuer_of(jwt_keys).access_token(user_id=1, email="a@example.com", role="customer", now=an_hour_ago)
    with pytest.raises(InvalidToken):
        verify_token(token, jwt_keys[1].read_text())


def test_a_private_key_that_does_not_match_the_public_key_is_refused_at_start(jwt_keys, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="does not match"):
        TokenIssuer.from_files(other, jwt_keys[1], FIFTEEN_MINUTES, TWO_WEEKS)


def test_a_non_ed25519_private_key_is_refused_at_start(jwt_keys, tmp_path):
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(generate_private_key(65537, 2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ValueError, match="Ed25519"):
        TokenIssuer.from_files(rsa, jwt_keys[1], FIFTEEN_MINUTES, TWO_WEEKS)


def test_refresh_tokens_are_long_random_and_url_safe():
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) >= 43 and t.replace("-", "").replace("_", "").isalnum() for t in tokens)


async def test_passwords_are_hashed_with_argon2id_and_checked():
    password_hash = await hash_password("correct-horse")
    assert password_hash.startswith("$argon2id$") and "correct-horse" not in password_hash
    assert await password_matches(password_hash, "correct-horse")
    assert not await password_matches(password_hash, "Correct-horse")
    assert not await password_matches("not a hash", "correct-horse")
    assert not needs_rehash(password_hash)


async def test_hashes_run_one_per_parallelism_cpus_so_argon2_threads_never_outnumber_the_cpus(monkeypatch):
    """argon2 runs `parallelism` threads of its own per hash: twelve logins at once may not hash twelve at once
    (asyncio's default pool ran min(32, CPUs + 4): 24 argon2 threads on 2 CPUs), or the event loop, and with it
    every other request of auth, is left a sliver of the CPUs; they wait their turn instead."""
    running = peak = 0
    lock = threading.Lock()

    class Counting:
        parallelism = passwords._hasher.parallelism

        def verify(self, password_hash: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1
            return True

    monkeypatch.setattr(passwords, "_hasher", Counting())
    assert await asyncio.gather(*(password_matches("h", "p") for _ in range(12))) == [True] * 12
    assert peak <= max(1, len(os.sched_getaffinity(0)) // Counting.parallelism) == passwords.HASH_WORKERS


class Recording:
    """A hasher that notes each password it checks, in order, takes 10 ms, and accepts those `right` says."""

    parallelism = passwords._hasher.parallelism

    def __init__(self, order: list[str], right: Callable[[str], bool]) -> None:
        self.order, self.right = order, right

    def verify(self, password_hash: str, password: str) -> bool:
        self.order.append(password)
        time.sleep(0.01)
        return self.right(password)


async def test_waiting_hashes_take_turns_by_client_address(monkeypatch):
    """A flood from one address that got past the gateway queues behind itself: another customer's login waits
    for the hash in hand, not for every hash the flood queued before it."""
    order: list[str] = []
    monkeypatch.setattr(passwords, "_hasher", Recording(order, lambda password: True))
    monkeypatch.setattr(passwords, "_turns", passwords.TakeTurns(1))

    async def check(client: str, password: str) -> bool:
        passwords.hashing_for.set(client)
        return await password_matches("h", password)

    flood = [asyncio.create_task(check("192.0.2.66", f"flood-{i}")) for i in range(6)]
    await asyncio.sleep(0)  # the flood is first: one hash in hand, five waiting
    customers = [asyncio.create_task(check(f"192.0.2.{7 + i}", f"customer-{i}")) for i in range(2)]
    assert all(await asyncio.gather(*flood, *customers))
    # each waiting address once a round, the flood (whose hash was in hand) after the others
    assert order == ["flood-0", "customer-0", "customer-1", "flood-1", "flood-2", "flood-3", "flood-4", "flood-5"]


async def test_a_hash_given_up_while_waiting_passes_its_turn_on(monkeypatch):
    monkeypatch.setattr(passwords, "_turns", passwords.TakeTurns(1))
    turns = passwords._turns
    await turns.acquire("a")
    waiting = asyncio.create_task(turns.acquire("b"))
    granted_then_cancelled = asyncio.create_task(turns.acquire("c"))
    await asyncio.sleep(0)
    waiting.cancel()
    turns.release("a")  # goes to c, whose task is cancelled before it runs: c passes it on
    granted_then_cancelled.cancel()
    await asyncio.gather(waiting, granted_then_cancelled, return_exceptions=True)
    await asyncio.wait_for(turns.acquire("d"), 1)  # the slot is free again


async def test_an_address_with_failed_checks_waits_behind_every_other(monkeypatch):
    """Three failed checks in a minute from one address (a flood that got past the gateway): its hashes wait until
    no one else waits; a right password clears its record."""
    order: list[str] = []
    failures = passwords.Failures()
    monkeypatch.setattr(passwords, "_hasher", Recording(order, lambda password: password.startswith("customer")))
    monkeypatch.setattr(passwords, "failures", failures)
    monkeypatch.setattr(passwords, "_turns", passwords.TakeTurns(1, failures.suspect))
    flooder = "192.0.2.66"

    async def check(client: str, password: str) -> bool:
        passwords.hashing_for.set(client)
        return await password_matches("h", password)

    for i in range(3):
        assert not await check(flooder, f"wrong-{i}")
    assert failures.suspect(flooder) and not failures.suspect("192.0.2.7")

    flood = [asyncio.create_task(check(flooder, f"flood-{i}")) for i in range(4)]
    await asyncio.sleep(0)  # one flood hash in hand, three waiting
    customers = [asyncio.create_task(check(f"192.0.2.{7 + i}", f"customer-{i}")) for i in range(3)]
    await asyncio.gather(*flood, *customers)
    assert order[3:] == ["flood-0", "customer-0", "customer-1", "customer-2", "flood-1", "flood-2", "flood-3"]

    failures.succeeded(flooder)
    assert not failures.suspect(flooder)
