"""HTTP routes of the products service: parse, authorise, call the use case (application.py), answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from shop_common.app import DbPool
from shop_common.auth import CUSTOMER, Admin, CurrentUser

from . import application
from .application import AlreadyReviewed, ProductNotFound
from .schemas import AdminProduct, Product, ProductIn, ProductPatch, Review, ReviewAccepted, ReviewIn

router = APIRouter(prefix="/api/products", tags=["products"])

ProductId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2**31)]


def _not_found(exc: ProductNotFound) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AdminProduct, summary="Add a product (admin)")
async def create_product(body: ProductIn, admin: Admin, pool: DbPool) -> AdminProduct:
    return AdminProduct.of(await application.create_product(pool, body))


@router.get("", response_model=list[Product], summary="The catalogue, by id")
async def list_products(pool: DbPool, limit: Limit = 50, offset: Offset = 0) -> list[Product]:
    return [Product.of(row) for row in await application.list_products(pool, limit, offset)]


@router.get("/{product_id}", response_model=Product, summary="One product")
async def get_product(product_id: ProductId, pool: DbPool) -> Product:
    try:
        return Product.of(await application.get_product(pool, product_id))
    except ProductNotFound as exc:
        raise _not_found(exc) from exc


@router.patch("/{product_id}", response_model=AdminProduct, summary="Change a product or restock it (admin)")
async def update_product(product_id: ProductId, body: ProductPatch, admin: Admin, pool: DbPool) -> AdminProduct:
    try:
        return AdminProduct.of(await application.update_product(pool, product_id, body.changes()))
    except ProductNotFound as exc:
        raise _not_found(exc) from exc


@router.post(
    "/{product_id}/reviews",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewAccepted,
    summary="Review a product (customer); moderation follows in the background",
)
async def post_review(product_id: ProductId, body: ReviewIn, user: CurrentUser, pool: DbPool) -> ReviewAccepted:
    if user.role != CUSTOMER:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only customers review products")
    try:
        review = await application.post_review(pool, product_id, user.id, body.rating, body.comment)
    except ProductNotFound as exc:
        raise _not_found(exc) from exc
    except AlreadyReviewed as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return ReviewAccepted(id=review["id"], product_id=product_id, status=review["status"])


@router.get("/{product_id}/reviews", response_model=list[Review], summary="Published reviews, newest first")
async def list_reviews(product_id: ProductId, pool: DbPool, limit: Limit = 50, offset: Offset = 0) -> list[Review]:
    try:
        return [Review.of(row) for row in await application.list_reviews(pool, product_id, limit, offset)]
    except ProductNotFound as exc:
        raise _not_found(exc) from exc
