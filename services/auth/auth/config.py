"""Settings of the auth service, from the environment (contract.md section 1 defaults)."""

from typing import ClassVar

from pydantic import Field
from shop_common.config import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "auth"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/auth", validation_alias="AUTH_DATABASE_URL")
