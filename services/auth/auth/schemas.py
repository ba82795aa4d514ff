"""What the auth routes take and return (docs/contract.md section 2); the OpenAPI page is built from these."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel, EmailStr, Field, field_validator

from .domain import NAME_MAX_LENGTH, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, REASON_MAX_LENGTH, normalise_email, normalise_name

Password = Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)


class Registration(BaseModel):
    """Extra fields (a `role`, say) are ignored: whoever registers is a customer."""

    email: EmailStr
    password: str = Password
    name: str | None = Field(None, max_length=NAME_MAX_LENGTH)

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, email: str) -> str:
        return normalise_email(email)

    @field_validator("name")
    @classmethod
    def _normalise_name(cls, name: str | None) -> str | None:
        return normalise_name(name)


class Credentials(BaseModel):
    # Not validated as an address: a mistyped one is just wrong credentials (401), like a wrong password.
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)

    @field_validator("email")
    @classmethod
    def _normalise_email(cls, email: str) -> str:
        return normalise_email(email)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=256)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class UserOut(BaseModel):
    id: int
    email: str
    name: str | None
    role: Literal["customer", "admin"]
    banned: bool
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> UserOut:
        return cls(**{field: row[field] for field in cls.model_fields})


class BanRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=REASON_MAX_LENGTH)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, reason: str) -> str:
        if not reason.strip():
            raise ValueError("a ban needs a reason")
        return reason.strip()


class BanOut(BaseModel):
    id: int
    banned: Literal[True] = True
