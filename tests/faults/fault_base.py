"""What every fault is made of: the round it breaks, the fault's four steps, and a patient wait."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from load import Client
from stack import FaultStack


@dataclass
class Round:
    stack: FaultStack
    client: Client
    placing: asyncio.Task | None = None  # the clients placing the round's orders
    notes: list[str] = field(default_factory=list)
    expected_parked: dict[str, int] = field(default_factory=dict)
    # Message-IDs a fault may see twice in the sink: the window its service documents (mail.py's
    # "between 250 accepted and the sent commit"), found open at the moment of the fault, not guessed.
    admitted_copies: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)  # what a fault's own checks found wrong


async def until(check, timeout: float, what: str, interval: float = 0.2):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {value!r})")
        await asyncio.sleep(interval)


class Fault:
    name = "none"
    hold = (2.0, 10.0)  # the fault lasts at least / at most this long while the clients go on (seconds)
    extra_orders = 0  # orders the fault placed itself, beside the round's
    stock = 0  # units a product needs at least, for the orders the fault places itself

    async def inject(self, r: Round) -> None: ...

    async def repair(self, r: Round) -> None: ...

    async def verify(self, r: Round) -> None:
        """The fault's own checks, after the books balanced."""

    async def cleanup(self, r: Round) -> None: ...
