"""Event handlers of the orders service: what it consumes, declared on its router."""

from __future__ import annotations

import logging

from shop_common.auth import record_ban
from shop_events import Event, Router
from shop_events.catalogue import ProductCreated, ProductUpdated, StockRejected, StockReserved, UserBanned
from shop_events.db_types import DbConnection

from . import db
from .domain import status_after_stock_event

log = logging.getLogger("orders.handlers")
router = Router()


@router.handles(UserBanned)
async def on_user_banned(event: Event[UserBanned], conn: DbConnection) -> None:
    """The banned user's unexpired tokens are refused from now on."""
    await record_ban(conn, event.data)


@router.handles(ProductCreated, ProductUpdated)
async def on_product_changed(event: Event[ProductCreated | ProductUpdated], conn: DbConnection) -> None:
    """ProductCreated and ProductUpdated: keep the catalogue copy; out-of-order delivery never rolls a price back."""
    product = event.data
    written = await db.upsert_product(
        conn, product.product_id, product.name, product.price, product.stock, event.occurred_at
    )
    if not written:
        log.info("older product event ignored", extra={"product_id": product.product_id})


@router.handles(StockReserved, StockRejected)
async def on_stock_event(event: Event[StockReserved | StockRejected], conn: DbConnection) -> None:
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
    reason = event.data.reason if isinstance(event.data, StockRejected) else None
    await db.set_status(conn, order.id, new_status, reason=reason)

