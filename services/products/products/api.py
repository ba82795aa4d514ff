"""HTTP routes of the products service: parse, authorise, call the domain, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from shop_common.app import DbPool
from shop_common.auth import CUSTOMER, Admin, CurrentUser
from shop_events import add_event
from shop_events.catalogue import ProductCreated, ProductReviewed, ProductUpdated

from . import db
from .domain import low_stock_check
from .schemas import AdminProduct, Product, ProductIn, ProductPatch, Review, ReviewAccepted, ReviewIn

router = APIRouter(prefix="/api/products", tags=["products"])

ProductId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2**31)]


def _not_found(product_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"product {product_id} not found")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AdminProduct, summary="Add a product (admin)")
async def create_product(body: ProductIn, admin: Admin, pool: DbPool) -> AdminProduct:
    # No alert at creation: the first stock movement that leaves it at or below the threshold alerts.
    async with pool.acquire() as conn, conn.transaction():
        row = await db.insert_product(
            conn,
            name=body.name,
            description=body.description or "",
            price=body.price,
            stock=body.stock,
            low_stock_threshold=body.low_stock_threshold,
            supplier_email=body.supplier_email,
        )
        await add_event(conn, ProductCreated(
            product_id=row["id"], name=row["name"], price=row["price"], stock=row["stock"],
            supplier_email=row["supplier_email"],
        ))
    return AdminProduct.of(row)


@router.get("", response_model=list[Product], summary="The catalogue, by id")
async def list_products(pool: DbPool, limit: Limit = 50, offset: Offset = 0) -> list[Product]:
    async with pool.acquire() as conn:
        return [Product.of(row) for row in await db.list_products(conn, limit, offset)]


@router.get("/{product_id}", response_model=Product, summary="One product")
async def get_product(product_id: ProductId, pool: DbPool) -> Product:
    async with pool.acquire() as conn:
        row = await db.get_product(conn, product_id)
    if row is None:
        raise _not_found(product_id)
    return Product.of(row)


@router.patch("/{product_id}", response_model=AdminProduct, summary="Change a product or restock it (admin)")
async def update_product(product_id: ProductId, body: ProductPatch, admin: Admin, pool: DbPool) -> AdminProduct:
    changes = body.changes()
    async with pool.acquire() as conn, conn.transaction():
        current = await db.get_product(conn, product_id, lock=True)  # reservations wait for this restock
        if current is None:
            raise _not_found(product_id)
        low = None
        if "stock" in changes or "low_stock_threshold" in changes:
            stock = changes.get("stock", current["stock"])
            threshold = changes.get("low_stock_threshold", current["low_stock_threshold"])
            low = low_stock_check(stock, threshold, current["low_stock_alerted"])
            changes["low_stock_alerted"] = low.alerted
        row = await db.update_product(conn, product_id, changes)
        await add_event(conn, ProductUpdated(
            product_id=row["id"], name=row["name"], price=row["price"], stock=row["stock"],
            supplier_email=row["supplier_email"],
        ))
        if low is not None and low.alert:
            await db.add_stock_low(conn, row)
    return AdminProduct.of(row)


@router.post(
    "/{product_id}/reviews",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewAccepted,
    summary="Review a product (customer); moderation follows in the background",
)
async def post_review(product_id: ProductId, body: ReviewIn, user: CurrentUser, pool: DbPool) -> ReviewAccepted:
    if user.role != CUSTOMER:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only customers review products")
    async with pool.acquire() as conn, conn.transaction():
        if await db.get_product(conn, product_id) is None:
            raise _not_found(product_id)
        review = await db.insert_review(
            conn, product_id=product_id, user_id=user.id, rating=body.rating, comment=body.comment
        )
        if review is None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"you already reviewed product {product_id}")
        await add_event(conn, ProductReviewed(
            review_id=review["id"], product_id=product_id, user_id=user.id, rating=body.rating, comment=body.comment,
        ))
    return ReviewAccepted(id=review["id"], product_id=product_id, status=review["status"])


@router.get("/{product_id}/reviews", response_model=list[Review], summary="Published reviews, newest first")
async def list_reviews(product_id: ProductId, pool: DbPool, limit: Limit = 50, offset: Offset = 0) -> list[Review]:
    async with pool.acquire() as conn:
        if await db.get_product(conn, product_id) is None:
            raise _not_found(product_id)
        return [Review.of(row) for row in await db.published_reviews(conn, product_id, limit, offset)]
