"""Use cases of the products service, between the routes and handlers and the SQL.

Each opens its transaction on the pool (the routes' use cases) or runs in the consumer's transaction it is
given as `conn` (the handlers'), asks the pure domain, writes through db and adds its events to the outbox
in that same transaction.

The catalogue: create_product, list_products, get_product, update_product (a restock too).
Reviews: post_review, list_reviews, moderate_review (on ProductReviewed).
Stock: reserve_stock (on OrderCreated), release_stock (on OrderCancelled and OrderRefunded).
Bans: refuse_banned_user (on UserBanned).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from shop_common.bans import BannedUsers, record_ban
from shop_events import EventData, add_event, add_events
from shop_events.catalogue import (
    OrderCreated,
    ProductCreated,
    ProductReviewed,
    ProductUpdated,
    ReviewModerated,
    StockLow,
    StockRejected,
    StockReserved,
    UserBanned,
)
from shop_events.db_types import DbConnection

from . import db
from .domain import Refusal, Reservation, ReviewStatus, Shelf, decide_in_turn, moderate, wanted_quantities
from .schemas import ProductIn


class ProductNotFound(LookupError):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} not found")


class AlreadyReviewed(Exception):
    def __init__(self, product_id: int) -> None:
        super().__init__(f"you already reviewed product {product_id}")


# ---- the catalogue ----


async def create_product(pool: asyncpg.Pool, product: ProductIn) -> asyncpg.Record:
    # No alert at creation: the first stock movement that leaves it at or below the threshold alerts.
    async with pool.acquire() as conn, conn.transaction():
        row = await db.insert_product(
            conn,
            name=product.name,
            description=product.description or "",
            price=product.price,
            stock=product.stock,
            low_stock_threshold=product.low_stock_threshold,
            supplier_email=product.supplier_email,
        )
        await add_event(conn, ProductCreated(
            product_id=row["id"], name=row["name"], price=row["price"], stock=row["stock"],
            supplier_email=row["supplier_email"],
        ))
    return row


async def list_products(pool: asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        return await db.list_products(conn, limit, offset)


async def get_product(pool: asyncpg.Pool, product_id: int) -> asyncpg.Record:
    async with pool.acquire() as conn:
        row = await db.get_product(conn, product_id)
    if row is None:
        raise ProductNotFound(product_id)
    return row


async def update_product(pool: asyncpg.Pool, product_id: int, changes: Mapping[str, Any]) -> asyncpg.Record:
    """Change the fields sent; a new stock or threshold may cross the low-stock line (StockLow)."""
    async with pool.acquire() as conn, conn.transaction():
        current = await db.get_product(conn, product_id, lock=True)  # reservations wait for this restock
        if current is None:
            raise ProductNotFound(product_id)
        columns = dict(changes)
        alert = False
        if "stock" in changes or "low_stock_threshold" in changes:
            shelf = _shelf(current)
            alert = shelf.set_level(changes.get("stock", shelf.stock), changes.get("low_stock_threshold"))
            columns["low_stock_alerted"] = shelf.alerted
        row = await db.update_product(conn, product_id, columns)
        await add_event(conn, ProductUpdated(
            product_id=row["id"], name=row["name"], price=row["price"], stock=row["stock"],
            supplier_email=row["supplier_email"],
        ))
        if alert:
            await add_event(conn, _stock_low(row, row["stock"]))
    return row


# ---- reviews ----


async def post_review(pool: asyncpg.Pool, product_id: int, user_id: int, rating: int, comment: str) -> asyncpg.Record:
    """The new pending review; moderation follows on its ProductReviewed."""
    async with pool.acquire() as conn, conn.transaction():
        if await db.get_product(conn, product_id) is None:
            raise ProductNotFound(product_id)
        review = await db.insert_review(conn, product_id=product_id, user_id=user_id, rating=rating, comment=comment)
        if review is None:
            raise AlreadyReviewed(product_id)
        await add_event(conn, ProductReviewed(
            review_id=review["id"], product_id=product_id, user_id=user_id, rating=rating, comment=comment,
        ))
    return review


async def list_reviews(pool: asyncpg.Pool, product_id: int, limit: int, offset: int) -> list[asyncpg.Record]:
    async with pool.acquire() as conn:
        if await db.get_product(conn, product_id) is None:
            raise ProductNotFound(product_id)
        return await db.published_reviews(conn, product_id, limit, offset)


async def moderate_review(conn: DbConnection, review_id: int) -> None:
    """Publish the review or reject it as spam, count a published rating, tell analytics (once per review)."""
    review = await db.get_review(conn, review_id, lock=True)
    if review is None:
        raise LookupError(f"review {review_id} is not in this database")
    if review["status"] != ReviewStatus.PENDING.value:
        return  # moderated already
    status = moderate(review["comment"])
    await db.set_review_status(conn, review["id"], status)
    if status is ReviewStatus.PUBLISHED:
        await db.count_published_rating(conn, review["product_id"], review["rating"])
    await add_event(conn, ReviewModerated(
        review_id=review["id"],
        product_id=review["product_id"],
        user_id=review["user_id"],
        rating=review["rating"],
        status=status.value,
    ))


# ---- stock ----


async def reserve_stock(conn: DbConnection, orders: list[tuple[OrderCreated, str | None]]) -> None:
    """Reserve every line of each order or none, deciding the orders one after the other as they came.

    Every product of the run is locked once, in id order, before anything is read: the rows stay locked
    until the caller commits, so orders racing for the last units (in this run or in another replica)
    are decided one after the other on fresh stock. Each order's events carry the correlation id paired
    with it (None: the one being handled now)."""
    products = await db.lock_products(conn, {item.product_id for order, _ in orders for item in order.items})
    decided = await db.decided_orders(conn, [order.order_id for order, _ in orders])
    fresh = []
    for order, correlation in orders:
        if order.order_id not in decided:  # else the same order came again under another event id
            decided.add(order.order_id)
            fresh.append((order, correlation))
    shelves = {pid: _shelf(row) for pid, row in products.items()}
    outcomes = decide_in_turn(
        [(order.order_id, wanted_quantities((i.product_id, i.quantity) for i in order.items)) for order, _ in fresh],
        shelves,
    )

    events: list[tuple[EventData, str | None]] = []
    for (order, correlation), decision in zip(fresh, outcomes, strict=True):
        events += [(_stock_low(products[pid], left), correlation) for pid, left in decision.low_stock]
        if isinstance(decision.outcome, Refusal):
            reason = decision.outcome.reason
            rejected = StockRejected(order_id=order.order_id, user_id=order.user_id, reason=reason, email=order.email)
            events.append((rejected, correlation))
        else:
            events.append((StockReserved(order_id=order.order_id), correlation))
    taken = sorted({pid for d in outcomes if isinstance(d.outcome, Reservation) for pid in d.outcome.lines})
    await db.write_stocks(conn, [(pid, shelves[pid].stock, shelves[pid].alerted) for pid in taken])
    await db.record_decisions(conn, [(order.user_id, decision) for (order, _), decision in zip(fresh, outcomes, strict=True)])
    if events:
        await add_events(conn, events)


async def release_stock(conn: DbConnection, order_id: int, user_id: int, reason: str) -> None:
    """Put back exactly what was reserved for the order, once (it was cancelled or refunded). An order not
    decided yet is marked cancelled, so that its OrderCreated, when it comes, takes nothing."""
    reservation = await db.find_reservation(conn, order_id, lock=True)
    if reservation is None:
        if await db.record_cancelled_before_reserved(conn, order_id, user_id, reason):
            return
        # Another replica's reservation of the order committed while we waited on its key: release that.
        reservation = await db.find_reservation(conn, order_id, lock=True)
        assert reservation is not None
    if reservation["status"] != "reserved":
        return
    lines = await db.reserved_lines(conn, order_id)
    products = await db.lock_products(conn, lines)
    shelves = {pid: _shelf(row) for pid, row in products.items()}
    low = [pid for pid, quantity in lines.items() if shelves[pid].set_level(shelves[pid].stock + quantity)]
    await db.write_stocks(conn, [(pid, shelves[pid].stock, shelves[pid].alerted) for pid in lines])
    await db.mark_released(conn, order_id)
    if low:
        await add_events(conn, [(_stock_low(products[pid], shelves[pid].stock), None) for pid in low])


# ---- bans ----


async def refuse_banned_user(conn: DbConnection, ban: UserBanned, bans: BannedUsers) -> None:
    """The banned user's unexpired tokens are refused from now on."""
    await record_ban(conn, ban, bans)


def _shelf(product: asyncpg.Record) -> Shelf:
    return Shelf(product["stock"], product["low_stock_threshold"], product["low_stock_alerted"])


def _stock_low(product: asyncpg.Record, stock: int) -> StockLow:
    return StockLow(
        product_id=product["id"],
        current_stock=stock,
        threshold=product["low_stock_threshold"],
        name=product["name"],
        supplier_email=product["supplier_email"],
    )
