"""The JSON the products API takes and gives (explicit models, so the OpenAPI page is the documentation)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator
from shop_common.ratings import rating_average
from shop_events import Money

from .domain import DEFAULT_LOW_STOCK_THRESHOLD, MAX_COMMENT_LENGTH

MAX_STOCK = 1_000_000_000  # fits the integer column with room for cancellations to add back
Price = Annotated[Money, Field(gt=Decimal("0"), le=Decimal("9999999999.99"))]  # NUMERIC(12, 2), positive
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]


class _Input(BaseModel):
    # A misspelt field is an error, not a silent no-op.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProductIn(_Input):
    name: Name
    description: Description | None = None
    price: Price
    stock: Stock
    low_stock_threshold: Stock = DEFAULT_LOW_STOCK_THRESHOLD
    supplier_email: EmailStr | None = None


class ProductPatch(_Input):
    """Only the fields sent change. `stock` sets the new stock level (a restock)."""

    name: Name | None = None
    description: Description | None = None
    price: Price | None = None
    stock: Stock | None = None
    low_stock_threshold: Stock | None = None
    supplier_email: EmailStr | None = None

    @model_validator(mode="after")
    def _something_and_no_null_required_field(self) -> ProductPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send at least one field")
        for field in ("name", "price", "stock", "low_stock_threshold"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        sent = {name: getattr(self, name) for name in self.model_fields_set}
        if "description" in sent and sent["description"] is None:
            sent["description"] = ""
        return sent


class Product(BaseModel):
    id: int
    name: str
    description: str
    price: Money
    stock: int
    low_stock_threshold: int
    rating_avg: str | None = Field(description="mean of the published ratings, two decimals; null before the first")
    rating_count: int = Field(description="how many published reviews")

    @classmethod
    def of(cls, row: asyncpg.Record) -> Product:
        return cls(**_product_fields(row))


class AdminProduct(Product):
    """What the admin routes answer: the public product plus who supplies it."""

    supplier_email: str | None

    @classmethod
    def of(cls, row: asyncpg.Record) -> AdminProduct:
        return cls(**_product_fields(row), supplier_email=row["supplier_email"])


def _product_fields(row: asyncpg.Record) -> dict[str, object]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "price": row["price"],
        "stock": row["stock"],
        "low_stock_threshold": row["low_stock_threshold"],
        "rating_avg": rating_average(row["rating_sum"], row["rating_count"]),
        "rating_count": row["rating_count"],
    }


class ReviewIn(_Input):
    rating: int = Field(ge=1, le=5)
    comment: str = Field(min_length=1, max_length=MAX_COMMENT_LENGTH)


class ReviewAccepted(BaseModel):
    id: int
    product_id: int
    status: str = Field(description='"pending" until moderation, which runs in the background')


class Review(BaseModel):
    id: int
    product_id: int
    user_id: int
    rating: int
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Review:
        return cls(**{name: row[name] for name in cls.model_fields})
