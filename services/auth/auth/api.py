"""HTTP routes of the auth service: parse, authorise, call the domain, return."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from shop_common.app import DbPool
from shop_common.auth import Admin, CurrentUser, Principal
from shop_events import add_event
from shop_events.catalogue import UserBanned, UserRegistered
from shop_events.db_types import DbConnection

from . import db
from .domain import ADMIN, BanDecision, RefreshVerdict, StoredRefreshToken, decide_ban, judge_refresh, refresh_token_hash
from .passwords import hash_password, needs_rehash, password_matches, spend_a_check
from .schemas import BanOut, BanRequest, Credentials, RefreshRequest, Registration, TokenPair, UserOut
from .tokens import TokenIssuer, new_refresh_token

router = APIRouter(prefix="/api/auth", tags=["auth"])

UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_BEARER = {"WWW-Authenticate": "Bearer"}


def _issuer(request: Request) -> TokenIssuer:
    issuer: TokenIssuer = request.app.state.token_issuer
    return issuer


Issuer = Annotated[TokenIssuer, Depends(_issuer)]


async def _active_admin(admin: Admin, pool: DbPool) -> Principal:
    """The token says admin; the database must agree now (a banned or demoted admin's token still lives 15 min)."""
    row = await db.user_by_id(pool, admin.id)
    if row is None or row["banned"] or row["role"] != ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin only")
    return admin


ActiveAdmin = Annotated[Principal, Depends(_active_admin)]


@router.post(
    "/register", status_code=status.HTTP_201_CREATED, response_model=UserOut,
    responses={409: {"description": "email taken"}, 422: {"description": "bad email or password"}},
)
async def register(body: Registration, pool: DbPool) -> UserOut:
    password_hash = await hash_password(body.password)
    async with pool.acquire() as conn, conn.transaction():
        user = await db.insert_customer(conn, body.email, body.name, password_hash)
        if user is None:
            raise HTTPException(status.HTTP_409_CONFLICT, "this email is already registered")
        await add_event(conn, UserRegistered(user_id=user["id"], email=user["email"], name=user["name"]))
    return UserOut.of(user)


@router.post(
    "/login", response_model=TokenPair,
    responses={401: {"description": "wrong email or password"}, 403: {"description": "banned"}},
)
async def login(body: Credentials, pool: DbPool, issuer: Issuer) -> TokenPair:
    user = await db.user_with_password(pool, body.email)
    if user is None:
        await spend_a_check(body.password)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong email or password", headers=_BEARER)
    if not await password_matches(user["password_hash"], body.password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong email or password", headers=_BEARER)
    if needs_rehash(user["password_hash"]):
        await db.set_password_hash(pool, user["id"], await hash_password(body.password))
    async with pool.acquire() as conn, conn.transaction():
        # FOR SHARE: a ban committing now waits for us and then revokes the token we issue, or we see it.
        current = await db.user_by_id(conn, user["id"], lock="FOR SHARE")
        assert current is not None  # users are never deleted
        if current["banned"]:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this account is banned")
        return await _issue_pair(conn, issuer, current, family_id=uuid.uuid4())


@router.post("/refresh", response_model=TokenPair, responses={401: {"description": "spent, expired or revoked"}})
async def refresh(body: RefreshRequest, pool: DbPool, issuer: Issuer) -> TokenPair:
    token_hash = refresh_token_hash(body.refresh_token)
    refused: str | None = None
    async with pool.acquire() as conn, conn.transaction():
        owner = await db.owner_of_refresh_token(conn, token_hash)
        if owner is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown refresh token", headers=_BEARER)
        user = await db.user_by_id(conn, owner, lock="FOR SHARE")
        stored = await db.lock_refresh_token(conn, token_hash)
        assert user is not None and stored is not None  # users and refresh tokens are never deleted
        verdict = judge_refresh(
            StoredRefreshToken(stored["expires_at"], stored["spent_at"], stored["revoked_at"]), datetime.now(UTC)
        )
        if verdict is RefreshVerdict.REUSED:
            # Refused after commit, so the family's revocation is kept.
            await db.revoke_family(conn, stored["family_id"])
            refused = "refresh token already used: this login is revoked, sign in again"
        elif verdict is not RefreshVerdict.USABLE:
            refused = f"refresh token {verdict.value}"
        elif user["banned"]:
            refused = "this account is banned"
        else:
            await db.spend_refresh_token(conn, stored["id"])
            pair = await _issue_pair(conn, issuer, user, family_id=stored["family_id"])
    if refused is not None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, refused, headers=_BEARER)
    return pair


@router.get("/me", response_model=UserOut, responses={401: {"description": "no or bad token"}})
async def me(principal: CurrentUser, pool: DbPool) -> UserOut:
    # Read from the database, not the token, so `banned` and `role` are current.
    user = await db.user_by_id(pool, principal.id)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this token's account does not exist", headers=_BEARER)
    return UserOut.of(user)


@router.get("/users", response_model=list[UserOut], responses={403: {"description": "admin only"}})
async def list_users(
    _: ActiveAdmin,
    pool: DbPool,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[UserOut]:
    return [UserOut.of(row) for row in await db.list_users(pool, limit, offset)]


@router.post(
    "/users/{user_id}/ban", response_model=BanOut,
    responses={403: {"description": "admin only"}, 404: {"description": "no such user"},
               409: {"description": "an admin can not ban themself"}},
)
async def ban_user(user_id: UserId, body: BanRequest, admin: ActiveAdmin, pool: DbPool) -> BanOut:
    async with pool.acquire() as conn, conn.transaction():
        user = await db.user_by_id(conn, user_id, lock="FOR UPDATE")
        if user is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no user {user_id}")
        decision = decide_ban(admin_id=admin.id, user_id=user_id, already_banned=user["banned"])
        if decision is BanDecision.SELF:
            raise HTTPException(status.HTTP_409_CONFLICT, "an admin can not ban themself")
        if decision is BanDecision.BAN:
            await db.mark_banned(conn, user_id, body.reason, admin.id)
            await db.revoke_all_of_user(conn, user_id)
            await add_event(conn, UserBanned(
                user_id=user_id, reason=body.reason, banned_by=admin.id, email=user["email"], name=user["name"],
            ))
    return BanOut(id=user_id)


async def _issue_pair(conn: DbConnection, issuer: TokenIssuer, user: asyncpg.Record, family_id: uuid.UUID) -> TokenPair:
    refresh_token = new_refresh_token()
    expires_at = datetime.now(UTC) + issuer.refresh_lifetime
    await db.insert_refresh_token(conn, user["id"], family_id, refresh_token_hash(refresh_token), expires_at)
    return TokenPair(
        access_token=issuer.access_token(user_id=user["id"], email=user["email"], role=user["role"]),
        refresh_token=refresh_token,
        expires_in=issuer.expires_in,
    )
