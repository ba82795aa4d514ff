"""Settings of the products service, from the environment (docs/contract.md section 1 defaults)."""

from typing import ClassVar

from pydantic import Field
from shop_common.config import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "products"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/products", validation_alias="PRODUCTS_DATABASE_URL")
