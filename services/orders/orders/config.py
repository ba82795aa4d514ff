"""Settings of the orders service, from the environment (docs/contract.md section 1 defaults)."""

from typing import ClassVar

from pydantic import Field
from shop_common.config import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "orders"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/orders", validation_alias="ORDERS_DATABASE_URL")
    # Seconds a confirmed order has to be paid before it is cancelled with "payment timeout".
    payment_timeout_seconds: float = Field(900.0, gt=0, validation_alias="ORDER_PAYMENT_TIMEOUT")
