"""Password hashing with argon2id, off the event loop (each hash or check takes a CPU for ~0.1-0.2 s)."""

from __future__ import annotations

import asyncio
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    """argon2's verify compares in constant time; any failure is just "no"."""
    return await asyncio.to_thread(_matches, password_hash, password)


async def spend_a_check(password: str) -> None:
    """Verify against a dummy hash, so an unknown email costs as long as a wrong password."""
    await asyncio.to_thread(_matches, _dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's; login then stores a new one."""
    return _hasher.check_needs_rehash(password_hash)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash("no account has this password")
