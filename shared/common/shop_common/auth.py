"""Verifying access tokens locally with auth's public key, and refusing banned users at once (shop_common.bans).

Only auth holds the private key. Every other service reads the public key from a file and never
calls auth. Accepted algorithms are pinned, so `alg: none` and HMAC tokens signed with the public
key are refused.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Annotated

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .bans import BannedUsers

ALGORITHMS = ["EdDSA"]
ADMIN = "admin"
CUSTOMER = "customer"


@dataclass(frozen=True)
class Principal:
    id: int
    email: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


class InvalidToken(Exception):
    pass


# Tokens verified already, with their expiry: a client sends the same token with every call for its 15 minutes,
# and checking its signature again each time was a tenth of an order's time in orders. Keyed by the public key
# and the token's every byte, so only the very token that verified is taken, and only until its exp.
_VERIFIED: dict[tuple[str, str], tuple[Principal, float]] = {}
VERIFIED_KEPT = 10_000


def verify_token(token: str, public_key: str) -> Principal:
    known = _VERIFIED.get((public_key, token))
    if known is not None:
        principal, expires = known
        if time.time() < expires:  # PyJWT's own test, without leeway
            return principal
        del _VERIFIED[(public_key, token)]  # decoded again below, which refuses it as expired
    try:
        claims = jwt.decode(
            token, _key(public_key), algorithms=ALGORITHMS, options={"require": ["exp", "sub", "role", "email"]}
        )
        principal = Principal(id=int(claims["sub"]), email=str(claims["email"]), role=str(claims["role"]))
        expires = float(claims["exp"])
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from exc
    if len(_VERIFIED) >= VERIFIED_KEPT:
        del _VERIFIED[next(iter(_VERIFIED))]  # the oldest
    _VERIFIED[(public_key, token)] = principal, expires
    return principal


@functools.lru_cache(maxsize=8)
def _key(public_key: str) -> Ed25519PublicKey:
    """The PEM parsed once (PyJWT would parse it for every token)."""
    key = serialization.load_pem_public_key(public_key.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidToken("the public key is not an Ed25519 key")
    return key


_bearer = HTTPBearer(auto_error=False)


async def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        principal = verify_token(credentials.credentials, request.app.state.jwt_public_key)
    except InvalidToken as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, f"invalid token: {exc}", headers={"WWW-Authenticate": "Bearer"}
        ) from exc
    bans: BannedUsers | None = request.app.state.bans  # None: a service that does not check bans
    if bans is not None:
        banned = bans.banned(principal.id)
        if banned is None:  # the set may be behind (shop_common.bans): the table says
            banned = await request.app.state.pool.fetchval("SELECT true FROM banned_users WHERE user_id = $1", principal.id)
        if banned:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this account is banned")
    return principal


async def require_admin(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin only")
    return user


CurrentUser = Annotated[Principal, Depends(current_user)]
Admin = Annotated[Principal, Depends(require_admin)]
