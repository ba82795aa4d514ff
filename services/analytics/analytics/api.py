"""HTTP routes of the analytics service: parse, authorise, call the use case (application.py), answer. Admin only."""

from datetime import date

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field
from shop_common.app import DbPool
from shop_common.auth import Admin
from shop_common.ratings import rating_average
from shop_events import Money

from . import application
from .application import ProductUnknown
from .domain import DEFAULT_DAYS, MAX_DAYS

router = APIRouter(prefix="/api/analytics", tags=["analytics"])


class Summary(BaseModel):
    users_registered: int
    users_banned: int
    orders_created: int
    orders_confirmed: int
    orders_rejected: int
    orders_paid: int
    orders_cancelled: int
    orders_shipped: int
    orders_delivered: int
    refunds: int = Field(description="orders refunded")
    sales_total: Money = Field(description="sum of the totals of created orders")
    revenue: Money = Field(description="sum of the amounts of paid orders, less the refunds")
    refunded: Money = Field(description="sum of the amounts refunded")
    reviews: int = Field(description="reviews submitted (ProductReviewed), whatever their moderation")
    events_processed: int = Field(description="distinct events this service has handled")


class ProductFigures(BaseModel):
    product_id: int
    units_sold: int = Field(description="units on the lines of paid orders (a cancelled, refunded or unpaid order sold nothing)")
    revenue: Money = Field(description="quantity × unit price over those lines")
    units_refunded: int = Field(description="units on the lines of refunded orders")
    rating_avg: str | None = Field(description="mean of the published ratings, two decimals (\"4.33\"); null before the first")
    rating_count: int


class DayFigures(BaseModel):
    date: date
    registrations: int
    orders: int
    sales: Money
    revenue: Money = Field(description="paid that day, less refunded that day")
    refunds: int
    refunded: Money


@router.get("/summary", response_model=Summary, status_code=status.HTTP_200_OK)
async def get_summary(_: Admin, pool: DbPool) -> Summary:
    return Summary(**dict(await application.summary(pool)))


@router.get(
    "/products/{product_id}",
    response_model=ProductFigures,
    status_code=status.HTTP_200_OK,
    responses={404: {"description": "no event ever named this product"}},
)
async def get_product(product_id: int, _: Admin, pool: DbPool) -> ProductFigures:
    try:
        row = await application.product_figures(pool, product_id)
    except ProductUnknown as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return ProductFigures(
        product_id=product_id,
        units_sold=row["units_sold"],
        revenue=row["revenue"],
        units_refunded=row["units_refunded"],
        rating_avg=rating_average(row["rating_sum"], row["rating_count"]),
        rating_count=row["rating_count"],
    )


@router.get("/daily", response_model=list[DayFigures], status_code=status.HTTP_200_OK)
async def get_daily(
    _: Admin,
    pool: DbPool,
    days: int = Query(DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="how many UTC days, up to and including today"),
) -> list[DayFigures]:
    return [DayFigures(**dict(row)) for row in await application.daily(pool, days)]
