"""Signing access tokens (EdDSA, auth's private key) and making opaque refresh tokens."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shop_common.auth import verify_token

from .domain import access_claims

ALGORITHM = "EdDSA"


class TokenIssuer:
    """Holds auth's private key and the two lifetimes; the one place tokens are made."""

    def __init__(self, private_key: Ed25519PrivateKey, access_lifetime: timedelta, refresh_lifetime: timedelta) -> None:
        self._key = private_key
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime

    @classmethod
    def from_files(
        cls, private_path: Path, public_path: Path, access_lifetime: timedelta, refresh_lifetime: timedelta
    ) -> TokenIssuer:
        """Loads the private key and checks it matches the public key every service verifies with."""
        key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{private_path} is not an Ed25519 private key (EdDSA is the only accepted algorithm)")
        issuer = cls(key, access_lifetime, refresh_lifetime)
        probe = issuer.access_token(user_id=0, email="keycheck@example.com", role="customer")
        try:
            verify_token(probe, public_path.read_text())
        except Exception as exc:
            raise ValueError(f"{private_path} does not match the public key {public_path}") from exc
        return issuer

    def access_token(self, *, user_id: int, email: str, role: str, now: datetime | None = None) -> str:
        claims = access_claims(
            user_id=user_id, email=email, role=role, now=now or datetime.now(UTC), lifetime=self.access_lifetime
        )
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    @property
    def expires_in(self) -> int:
        """The access token's lifetime in seconds, as login and refresh report it."""
        return int(self.access_lifetime.total_seconds())


def new_refresh_token() -> str:
    """256 random bits, URL-safe; only its hash is stored."""
    return secrets.token_urlsafe(32)
