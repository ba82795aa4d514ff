"""Event handlers of the orders service: one async function per event type it consumes.

UserBanned is taken by the shared app kit (checks_bans=True in main.py)."""

from __future__ import annotations

import logging

import asyncpg
from shop_events import Event, Handler

from . import db
from .domain import OrderStatus, status_after_stock_event

log = logging.getLogger("orders.handlers")


async def on_product_changed(event: Event, conn: asyncpg.Connection) -> None:
    """ProductCreated and ProductUpdated: keep the catalogue copy; out-of-order delivery never rolls a price back."""
    product = event.data
    written = await db.upsert_product(
        conn, product.product_id, product.name, product.price, product.stock, event.occurred_at
    )
    if not written:
        log.info("older product event ignored", extra={"product_id": product.product_id})


async def on_stock_event(event: Event, conn: asyncpg.Connection) -> None:
    """StockReserved and StockRejected: pending → confirmed or rejected; a stale or repeated one changes nothing."""
    order = await db.get_order(conn, event.data.order_id, for_update=True)
    if order is None:
        # OrderCreated is only published after the order committed, so this is someone else's order id.
        log.warning("stock event for an unknown order ignored", extra={"order_id": event.data.order_id})
        return
    new_status = status_after_stock_event(order.status, event.event_type)
    if new_status is None:
        log.info("stock event changes nothing", extra={"order_id": order.id, "status": order.status.value})
        return
    reason = event.data.reason if new_status is OrderStatus.REJECTED else None
    await db.set_status(conn, order.id, new_status, reason=reason)


HANDLERS: dict[str, Handler] = {
    "ProductCreated": on_product_changed,
    "ProductUpdated": on_product_changed,
    "StockReserved": on_stock_event,
    "StockRejected": on_stock_event,
}
