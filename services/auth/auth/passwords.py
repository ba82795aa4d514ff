"""Password hashing with argon2id, off the event loop (each hash or check takes about 0.2 s of a CPU).

argon2 runs `parallelism` threads of its own per hash (4 by default), so hashes run on a pool of their own with
one worker per that many CPUs: however many logins arrive at once, argon2's threads never outnumber the CPUs, and
the event loop (every other request auth answers meanwhile) keeps its share of them. The old way, asyncio's
default pool (6 workers on 2 CPUs: 24 argon2 threads), left the loop a few per cent of a CPU while a flood of
logins was hashed: a GET /api/auth/me then took seconds (bench/abuse.py).

Hashes that wait for a worker take turns by client address (`hashing_for`, which the login and register routes
set from the address the gateway saw): one of each waiting address in turn, in the order they came, rather than
first come first served. So a flood from one address, whatever got past the gateway's limit, queues behind
itself: another customer's login waits for at most the hashes in hand and one turn of each other address.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
HASH_WORKERS = max(1, len(os.sched_getaffinity(0)) // _hasher.parallelism)
_hashing = ThreadPoolExecutor(max_workers=HASH_WORKERS, thread_name_prefix="argon2")
_dummy: str | None = None
T = TypeVar("T")

# The client address a hash is made for: its turn among the waiting ones (see above); "" when not set.
hashing_for: ContextVar[str] = ContextVar("hashing_for", default="")


class TakeTurns:
    """At most `slots` holders at once. When more wait, a freed slot goes to the next client in turn: each
    waiting client in the order it began to wait, the one whose hash just ended after the others, and each
    client's own waiters first come first served."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def acquire(self, client: str) -> None:
        if self._free and not self._waiting:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(client, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(client)  # handed a slot just as it was cancelled: pass it on
            else:
                queue = self._waiting.get(client)
                if queue is not None and turn in queue:
                    queue.remove(turn)
                    if not queue:
                        del self._waiting[client]
            raise

    def release(self, client: str) -> None:
        if client in self._waiting and len(self._waiting) > 1:
            self._waiting.move_to_end(client)  # it just had its turn
        while self._waiting:
            nxt, queue = next(iter(self._waiting.items()))
            turn = queue.popleft()
            if queue:
                self._waiting.move_to_end(nxt)  # its next waiter comes after every other client's
            else:
                del self._waiting[nxt]
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1


_turns = TakeTurns(HASH_WORKERS)


async def _off_the_loop(work: Callable[..., T], *args: str) -> T:
    client = hashing_for.get()
    await _turns.acquire(client)
    try:
        return await asyncio.get_running_loop().run_in_executor(_hashing, work, *args)
    finally:
        _turns.release(client)


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
