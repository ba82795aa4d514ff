"""What the ledger consumes: an order's total when it is placed, its amount when it is paid. Upserts keyed by
the order, so the two may arrive in either order; the inbox makes each event count once."""

from __future__ import annotations

from shop_events import Event, Router
from shop_events.catalogue import OrderCreated, OrderPaid
from shop_events.db_types import DbConnection

router = Router()


@router.handles(OrderCreated)
async def on_order_created(event: Event[OrderCreated], conn: DbConnection) -> None:
    await conn.execute(
        "INSERT INTO ledger (order_id, total) VALUES ($1, $2) ON CONFLICT (order_id) DO UPDATE SET total = EXCLUDED.total",
        event.data.order_id, event.data.total,
    )


@router.handles(OrderPaid)
async def on_order_paid(event: Event[OrderPaid], conn: DbConnection) -> None:
    await conn.execute(
        "INSERT INTO ledger (order_id, paid_amount) VALUES ($1, $2)"
        " ON CONFLICT (order_id) DO UPDATE SET paid_amount = EXCLUDED.paid_amount",
        event.data.order_id, event.data.amount,
    )


router.fills("ledger", by=(OrderCreated, OrderPaid), covers="the whole ledger (every order's total and payment)")
