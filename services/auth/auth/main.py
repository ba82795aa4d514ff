"""The auth service's composition root: its app, built from its own routes, handlers and migrations, and
what they depend on (the token issuer; the first admin is made at start)."""

from datetime import timedelta
from pathlib import Path

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from shop_common.app import create_service_app

from . import api, application, handlers
from .config import Settings
from .tokens import TokenIssuer


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def wiring(pool: asyncpg.Pool) -> dict[str, object]:
        await application.ensure_admin(pool, settings.admin_email, settings.admin_name, settings.admin_password)
        issuer = TokenIssuer.from_files(
            settings.jwt_private_key_path,
            settings.jwt_public_key_path,
            access_lifetime=timedelta(minutes=settings.access_token_minutes),
            refresh_lifetime=timedelta(days=settings.refresh_token_days),
        )
        return {"token_issuer": issuer}

    app = create_service_app(
        settings=settings,
        router=api.router,
        handlers=handlers.router,
        migrations=Path(__file__).with_name("migrations"),
        checks_bans=False,
        wiring=wiring,
        description="Users, passwords, tokens and bans.",
    )
    app.add_exception_handler(RequestValidationError, invalid_input)
    return app


async def invalid_input(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, without echoing the input back: it may be a password."""
    if not isinstance(exc, RequestValidationError):  # never: registered for that alone (Starlette types it Exception)
        raise exc
    errors = [{key: value for key, value in error.items() if key != "input"} for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
