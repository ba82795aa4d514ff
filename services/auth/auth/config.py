"""Settings of the auth service, from the environment (docs/contract.md section 1 defaults)."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from shop_common.config import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "auth"
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/auth", validation_alias="AUTH_DATABASE_URL")

    # Only auth holds the private key; every service (auth too) verifies with jwt_public_key_path.
    jwt_private_key_path: Path = Path(".run/keys/jwt_private.pem")
    access_token_minutes: int = Field(15, gt=0)
    refresh_token_days: int = Field(14, gt=0)

    # The first admin, created or updated at every start.
    admin_email: str = "admin@example.com"
    admin_password: str = "admin-password"
    admin_name: str = "Admin"
