"""HTTP routes of the auth service: parse, authorise, call the use case (application.py), answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from shop_common.app import DbPool
from shop_common.auth import Admin, CurrentUser, Principal

from . import application
from .application import (
    AccountBanned,
    AccountGone,
    EmailTaken,
    NotAnActiveAdmin,
    RefreshRefused,
    SelfBan,
    TooManyLoginAttempts,
    UserNotFound,
    WrongCredentials,
)
from .passwords import hashing_for
from .schemas import BanOut, BanRequest, Credentials, RefreshRequest, Registration, TokenPair, UserOut
from .tokens import TokenIssuer

router = APIRouter(prefix="/api/auth", tags=["auth"])

UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_BEARER = {"WWW-Authenticate": "Bearer"}


async def _issuer(request: Request) -> TokenIssuer:
    issuer: TokenIssuer = request.app.state.token_issuer
    return issuer


Issuer = Annotated[TokenIssuer, Depends(_issuer)]


def _hash_for_client(request: Request) -> str:
    """The client address: the one the gateway saw, the last of X-Forwarded-For (nginx appends it; what a client
    sent comes before), else the connection's. This request's password hash takes its turn for it (passwords.py)."""
    forwarded = request.headers.get("x-forwarded-for", "").rsplit(",", 1)[-1].strip()
    client = forwarded or (request.client.host if request.client else "")
    hashing_for.set(client)
    return client


async def _active_admin(admin: Admin, pool: DbPool) -> Principal:
    try:
        await application.ensure_active_admin(pool, admin.id)
    except NotAnActiveAdmin as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    return admin


ActiveAdmin = Annotated[Principal, Depends(_active_admin)]


@router.post(
    "/register", status_code=status.HTTP_201_CREATED, response_model=UserOut,
    responses={409: {"description": "email taken"}, 422: {"description": "bad email or password"}},
)
async def register(body: Registration, pool: DbPool, request: Request) -> UserOut:
    _hash_for_client(request)
    try:
        return UserOut.of(await application.register(pool, body.email, body.name, body.password))
    except EmailTaken as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@router.post(
    "/login", response_model=TokenPair,
    responses={
        401: {"description": "wrong email or password"}, 403: {"description": "banned"},
        429: {"description": "too many failed logins for this account: wait Retry-After seconds"},
    },
)
async def login(body: Credentials, pool: DbPool, issuer: Issuer, request: Request) -> TokenPair:
    client = _hash_for_client(request)
    try:
        return await application.login(pool, issuer, body.email, body.password, client)
    except WrongCredentials as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=_BEARER) from exc
    except AccountBanned as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except TooManyLoginAttempts as exc:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": str(exc.retry_after)}
        ) from exc


@router.post("/refresh", response_model=TokenPair, responses={401: {"description": "spent, expired or revoked"}})
async def refresh(body: RefreshRequest, pool: DbPool, issuer: Issuer) -> TokenPair:
    try:
        return await application.refresh(pool, issuer, body.refresh_token)
    except RefreshRefused as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=_BEARER) from exc


@router.get("/me", response_model=UserOut, responses={401: {"description": "no or bad token"}})
async def me(principal: CurrentUser, pool: DbPool) -> UserOut:
    try:
        return UserOut.of(await application.current_account(pool, principal.id))
    except AccountGone as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=_BEARER) from exc


@router.get("/users", response_model=list[UserOut], responses={403: {"description": "admin only"}})
async def list_users(
    _: ActiveAdmin,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[UserOut]:
    return [UserOut.of(row) for row in await application.list_users(pool, limit, offset)]


@router.post(
    "/users/{user_id}/ban", response_model=BanOut,
    responses={403: {"description": "admin only"}, 404: {"description": "no such user"},
               409: {"description": "an admin can not ban themself"}},
)
async def ban_user(user_id: UserId, body: BanRequest, admin: ActiveAdmin, pool: DbPool) -> BanOut:
    try:
        await application.ban_user(pool, user_id, body.reason, admin.id)
    except UserNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except SelfBan as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return BanOut(id=user_id)
