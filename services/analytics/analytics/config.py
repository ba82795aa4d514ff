"""Settings of the analytics service, from the environment (docs/contract.md section 1 defaults)."""

from typing import ClassVar

from pydantic import Field
from shop_common.config import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "analytics"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/analytics", validation_alias="ANALYTICS_DATABASE_URL")
