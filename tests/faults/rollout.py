"""Deploys while the shop sells: `make restart` of every service, and a release that changes an event's
version, producer first (its consumers still on the code before), then its consumers. Both under a steady
50 requests/s of GETs and order POSTs with Idempotency-Keys, with payments (Client.steady)."""

from __future__ import annotations

import asyncio
import time

from fault_base import Fault, Round, until
from load import Steady
from next_release import CHANGED, CONSUMERS, NEWER_REASON, PRODUCER
from shop_events import nodes, parking


class Rollout(Fault):
    hold = (0.0, 0.0)
    stock = 400  # about 15 orders a second for a minute stay payable, not rejected for want of stock

    async def inject(self, r: Round) -> None:
        self.failed_before = len(r.client.failed_answers)
        stop = asyncio.Event()
        load = asyncio.create_task(r.client.steady(stop))
        started = time.monotonic()
        try:
            await self.deploy(r)
        finally:
            stop.set()
            self.load: Steady = await load  # its last orders answered and in the ledger
        self.took = time.monotonic() - started
        self.extra_orders = self.load.orders

    async def deploy(self, r: Round) -> None: ...

    async def verify(self, r: Round) -> None:
        failed = r.client.failed_answers[self.failed_before:]
        if failed and r.stack.replicas > 1:
            r.problems.append(f"{len(failed)} answers failed during the rollout: {failed[:5]}")
        if self.load.unexpected:
            r.problems.append(f"{len(self.load.unexpected)} unexpected answers: {self.load.unexpected[:5]}")
        r.notes.append(f"{self.took:.0f} s of rollout under {self.load.describe(len(failed))}"
                       + (" (one process a service: each is away while it restarts)" if r.stack.replicas == 1 else ""))


class RollingRestart(Rollout):
    """make restart while the clients go on: every process of every service replaced in turn. With two a
    service no client may see a 5xx or a dropped connection; with one, each service is away for a moment."""

    name = "make restart (every service in turn)"

    async def deploy(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.restart)
        r.notes.append(f"{5 * r.stack.replicas} processes replaced")


class NewEventVersion(Rollout):
    """A release that raises an event's version (next_release.py), rolled out producer first: the consumers
    still on the code before park each new-version event with the reason; once they run the release (its
    upcaster reads the old version too), the parked ones are replayed, and the books balance."""

    name = f"{PRODUCER} emits {CHANGED} version 2, then its consumers upgrade"

    async def deploy(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.restart, PRODUCER, release="next")
        queues = [f"{service}.background.dlq" for service in CONSUMERS]
        connection = await nodes.connect(r.stack.stack.amqp_url)
        try:
            async def parked_everywhere() -> bool:
                return all([await parking.count_parked(connection, q) for q in queues])

            await until(parked_everywhere, 120, f"the consumers still on the code before park {CHANGED} version 2")
            await asyncio.to_thread(r.stack.restart, *CONSUMERS, release="next")
            for queue in queues:
                found = await parking.list_parked(connection, queue)
                wrong = [m.reason for m in found if m.reason != NEWER_REASON]
                if wrong:
                    r.problems.append(f"{queue}: parked for another reason than the new version: {wrong[:3]}")
                replayed = await parking.replay(connection, queue)
                r.notes.append(f"{queue}: {len(found)} parked as newer than the code knew, {replayed} replayed after its upgrade")
        finally:
            await connection.close()
