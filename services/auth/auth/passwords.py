"""Password hashing with argon2id, off the event loop (each hash or check takes about 0.2 s of a CPU).

argon2 runs `parallelism` threads of its own per hash (4 by default), so hashes run on a pool of their own with
one worker per that many CPUs: however many logins arrive at once, argon2's threads never outnumber the CPUs, and
the event loop (every other request auth answers meanwhile) keeps its share of them. The old way, asyncio's
default pool (6 workers on 2 CPUs: 24 argon2 threads), left the loop a few per cent of a CPU while a flood of
logins was hashed: a GET /api/auth/me then took seconds (bench/abuse.py).

Hashes that wait for a worker take turns by client address (`hashing_for`, which the login and register routes
set from the address the gateway saw): one of each waiting address in turn, in the order they came, rather than
first come first served; and an address with 3 failed checks (wrong password, unknown email) in the last minute,
and no right password since, waits behind every other. So a flood from one address, whatever got past the
gateway's limit, queues behind itself and behind everyone else: another customer's login waits for the hashes in
hand. Which account a check is for plays no part in its turn, so waiting tells a client nothing about accounts.
"""

from __future__ import annotations

import asyncio
import os
import time
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


class Failures:
    """Recent failed checks per client address (a wrong password, an unknown email), forgotten after `window`
    seconds without one or at the client's next right password."""

    def __init__(self, window: float = 60.0, suspect_after: int = 3, most: int = 10_000) -> None:
        self.window, self.suspect_after, self.most = window, suspect_after, most
        self._seen: dict[str, tuple[int, float]] = {}  # client: (failures, monotonic time of the last)

    def failed(self, client: str) -> None:
        now = time.monotonic()
        count, last = self._seen.get(client, (0, now))
        self._seen[client] = (count + 1 if now - last <= self.window else 1, now)
        if len(self._seen) > self.most:  # a flood of addresses: keep the recent ones
            self._seen = {c: v for c, v in self._seen.items() if now - v[1] <= self.window}

    def succeeded(self, client: str) -> None:
        self._seen.pop(client, None)

    def suspect(self, client: str) -> bool:
        count, last = self._seen.get(client, (0, 0.0))
        return count >= self.suspect_after and time.monotonic() - last <= self.window


class TakeTurns:
    """At most `slots` holders at once. When more wait, a freed slot goes to the next client in turn: each
    waiting client in the order it began to wait, the one whose hash just ended after the others, and each
    client's own waiters first come first served. A client with recent failed checks (`suspect`) waits behind
    every other: it is served only when no one else waits."""

    def __init__(self, slots: int, suspect: Callable[[str], bool] = lambda client: False) -> None:
        self._free = slots
        self._suspect = suspect
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()
        self._later: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    async def acquire(self, client: str) -> None:
        if self._free and not self._waiting and not self._later:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        if client in self._waiting:  # where its earlier waiters are, so that its own stay in order
            line = self._waiting
        elif client in self._later or self._suspect(client):
            line = self._later
        else:
            line = self._waiting
        line.setdefault(client, deque()).append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.release(client)  # handed a slot just as it was cancelled: pass it on
            else:
                queue = line.get(client)
                if queue is not None and turn in queue:
                    queue.remove(turn)
                    if not queue:
                        del line[client]
            raise

    def release(self, client: str) -> None:
        for line in (self._waiting, self._later):
            if client in line and len(line) > 1:
                line.move_to_end(client)  # it just had its turn
        for line in (self._waiting, self._later):
            while line:
                nxt, queue = next(iter(line.items()))
                turn = queue.popleft()
                if queue:
                    line.move_to_end(nxt)  # its next waiter comes after every other client's
                else:
                    del line[nxt]
                if not turn.done():
                    turn.set_result(None)
                    return
        self._free += 1


failures = Failures()
_turns = TakeTurns(HASH_WORKERS, failures.suspect)


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
    matches = await _off_the_loop(_matches, password_hash, password)
    (failures.succeeded if matches else failures.failed)(hashing_for.get())
    return matches


async def spend_a_check(password: str) -> None:
    """Verify against a dummy hash, so an unknown email costs as long as a wrong password (and counts as a
    failed check of its client alike)."""
    await _off_the_loop(_matches, await _dummy_hash(), password)
    failures.failed(hashing_for.get())


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
