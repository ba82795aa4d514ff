"""Rounds of the order's whole life (issue 20): cancels racing their reservations, payments racing their
deadlines, orders down while deadlines fall due, refunds while RabbitMQ restarts. Each places orders of its
own beside the round's; the books (books.life_problems, books.check_money) judge them with the rest."""

from __future__ import annotations

import asyncio
import time

from fault_base import Fault, Round, until
from load import Placed
from stack import PAYMENT_SECONDS


async def place_many(r: Round, count: int, plan: str) -> list[Placed]:
    customers = r.client.ledger.customers
    return list(await asyncio.gather(*(r.client.place(customers[n % len(customers)], plan) for n in range(count))))


async def all_status(r: Round, orders: list[Placed], statuses: set[str], what: str, timeout: float = 120) -> None:
    async def reached() -> bool:
        await r.client.refresh_statuses()
        return all(o.status in statuses for o in orders)

    await until(reached, timeout, what, interval=0.5)


class CancelsRacingReservations(Fault):
    """A burst of orders, each cancelled by its customer the moment it is placed, while products (two processes
    in make test) reserves them: whichever comes first, no stock stays taken."""

    name = "cancels racing reservations"
    hold = (0.0, 0.0)
    extra_orders = 40
    stock = 40

    async def inject(self, r: Round) -> None:
        placed = await place_many(r, self.extra_orders, "cancel_pending")
        await all_status(r, placed, {"cancelled", "rejected"}, "every cancelled order final")
        cancelled = sum(o.answers.get("cancel") == 200 for o in placed)
        r.notes.append(f"{cancelled} of {len(placed)} cancelled at once by their customers")


class PaymentsRacingDeadlines(Fault):
    """Orders paid within 0.3 s either side of their payment deadline: each ends paid (its pay answered 200) or
    cancelled for "payment timeout" (its pay answered 409), never both, and no money is taken for a cancelled one."""

    name = "payments racing deadlines"
    hold = (0.0, 0.0)
    extra_orders = 30
    stock = 30

    async def inject(self, r: Round) -> None:
        placed = await place_many(r, self.extra_orders, "pay_late")
        await all_status(r, placed, {"paid", "cancelled", "rejected"}, "every late payer final", PAYMENT_SECONDS + 120)
        paid, timed_out = (sum(o.status == s for o in placed) for s in ("paid", "cancelled"))
        r.notes.append(f"paying at the deadline: {paid} paid first, {timed_out} cancelled by the deadline first")


class OrdersDownWhileDeadlinesFallDue(Fault):
    """Confirmed orders left unpaid; every orders process is killed (-9) and kept down past their deadline, then
    started: each is cancelled once, soon after the start."""

    name = "orders down while deadlines fall due"
    hold = (0.0, 0.0)
    extra_orders = 20
    stock = 20

    async def inject(self, r: Round) -> None:
        self.orders = await place_many(r, self.extra_orders, "unpaid")
        await all_status(r, self.orders, {"confirmed", "rejected"}, "the unpaid orders confirmed")
        r.stack.kill9(*r.stack.process_names("orders"))
        await asyncio.sleep(PAYMENT_SECONDS + 2)  # every deadline passes while no orders process runs

    async def repair(self, r: Round) -> None:
        started = time.monotonic()
        await asyncio.to_thread(r.stack.up)
        await all_status(r, self.orders, {"cancelled", "rejected"}, "the overdue orders cancelled after the start")
        r.notes.append(f"{self.extra_orders} overdue deadlines kept {time.monotonic() - started:.1f} s after make up began")

    async def verify(self, r: Round) -> None:
        rows = await r.stack.sql(
            "orders", "SELECT (body::jsonb -> 'data' ->> 'order_id')::bigint AS order_id, count(*)::int AS n FROM outbox"
            " WHERE event_type = 'OrderCancelled' AND body::jsonb -> 'data' ->> 'order_id' = ANY($1::text[])"
            " GROUP BY 1", [str(o.id) for o in self.orders],
        )
        if any(row["n"] != 1 for row in rows):
            r.problems.append(f"an overdue order was cancelled more than once: {[dict(x) for x in rows if x['n'] != 1]}")


class RefundsUnderBrokerRestart(Fault):
    """Paid orders refunded by the admin while RabbitMQ is stopped, then started: each refund answered at once
    (the outbox holds its event), stock back, the mail and analytics' refund once each."""

    name = "refunds under a RabbitMQ restart"
    hold = (0.0, 0.0)
    extra_orders = 20
    stock = 20

    async def inject(self, r: Round) -> None:
        self.orders = await place_many(r, self.extra_orders, "refund_later")
        await all_status(r, self.orders, {"paid", "rejected"}, "the orders to refund paid")
        await asyncio.to_thread(r.stack.server, "stop-one", "rabbitmq")
        for o in self.orders:
            if o.status == "paid":
                o.plan = "refund"
                await r.client.act(o, "refund", r.client.admin)
        refunded = sum(o.answers.get("refund") == 200 for o in self.orders)
        r.notes.append(f"{refunded} refunds answered 200 while RabbitMQ was stopped")

    async def repair(self, r: Round) -> None:
        await asyncio.to_thread(r.stack.server, "start-one", "rabbitmq")


LIFE_FAULTS = [CancelsRacingReservations, PaymentsRacingDeadlines, OrdersDownWhileDeadlinesFallDue, RefundsUnderBrokerRestart]
