"""Password hashing with argon2id, off the event loop (each hash or check takes about 0.2 s of a CPU).

argon2 runs `parallelism` threads of its own per hash (4 by default), so hashes run on a pool of their own with
one worker per that many CPUs: however many logins arrive at once, argon2's threads never outnumber the CPUs, and
the event loop (every other request auth answers meanwhile) keeps its share of them. The old way, asyncio's
default pool (6 workers on 2 CPUs: 24 argon2 threads), left the loop a few per cent of a CPU while a flood of
logins was hashed: a GET /api/auth/me then took seconds (bench/abuse.py). The hashes wait their turn in order.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
HASH_WORKERS = max(1, len(os.sched_getaffinity(0)) // _hasher.parallelism)
_hashing = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="argon2")
_dummy: str | None = None
T = TypeVar("T")


async def _off_the_loop(work: Callable[..., T], *args: str) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hashing, work, *args)


async def hash_password(password: str) -> str:
    return await _off_the_loop(_hasher.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    """argon2's verify compares in constant time; any failure is just "no"."""
    return await _off_the_loop(_matches, password_hash, password)


async def spend_a_check(password: str) -> None:
    """Verify against a dummy hash, so an unknown email costs as long as a wrong password."""
    await _off_the_loop(_matches, await _dummy_hash(), password)


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's; login then stores a new one."""
    return _hasher.check_needs_rehash(password_hash)


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def _dummy_hash() -> str:
    """Made once, off the loop too (the first unknown email hashed it on the event loop before)."""
    global _dummy
    if _dummy is None:
        _dummy = await _off_the_loop(_hasher.hash, "no account has this password")
    return _dummy
