"""POST /api/auth/login and GET /api/auth/me: token pairs, 401 for bad credentials and every kind of bad token."""

import base64
import hashlib
import hmac
import json
from datetime import timedelta

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


async def test_login_returns_a_pair_whose_access_token_verifies_with_the_public_key(auth, jwt_keys):
    user_id, _ = await auth.customer("erin@example.com")
    response = await auth.login("Erin@EXAMPLE.com")
    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
    claims = jwt.decode(pair["access_token"], jwt_keys[1].read_text(), algorithms=["EdDSA"])
    assert claims["sub"] == str(user_id) and claims["email"] == "erin@example.com" and claims["role"] == "customer"
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]


async def test_wrong_credentials_are_401_alike_for_a_wrong_password_and_an_unknown_email(auth):
    await auth.customer("frank@example.com")
    wrong_password = await auth.login("frank@example.com", "not-the-password")
    unknown_email = await auth.login("nobody@example.com", "correct-horse")
    not_an_email = await auth.login("frank", "correct-horse")
    for response in (wrong_password, unknown_email, not_an_email):
        assert response.status_code == 401
        assert response.json() == {"detail": "wrong email or password"}


async def test_login_without_a_password_is_422(auth):
    response = await auth.http.post("/api/auth/login", json={"email": "frank@example.com"})
    assert response.status_code == 422


async def test_me_reads_the_account_from_the_database(auth):
    user_id, pair = await auth.customer("gina@example.com")
    response = await auth.me(pair["access_token"])
    assert response.status_code == 200
    assert {k: v for k, v in response.json().items() if k != "created_at"} == {
        "id": user_id, "email": "gina@example.com", "name": None, "role": "customer", "banned": False,
    }


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256_signed_with_the_public_key(claims: dict, public_pem: str) -> str:
    """The classic algorithm-confusion attack: an HMAC token keyed with the (public) verification key."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def test_forged_and_expired_tokens_are_401(auth, jwt_keys, make_token):
    user_id, pair = await auth.customer("hal@example.com")
    good = pair["access_token"]
    claims = jwt.decode(good, options={"verify_signature": False})
    other_key = Ed25519PrivateKey.generate()
    header, payload, signature = good.split(".")
    as_admin = _b64(json.dumps({**claims, "role": "admin"}).encode())
    forged = {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "HS256 with the public key": _hs256_signed_with_the_public_key(claims, jwt_keys[1].read_text()),
        "signed by another key": jwt.encode(claims, other_key, algorithm="EdDSA"),
        "payload changed after signing": f"{header}.{as_admin}.{signature}",
        "expired": make_token(user_id, email="hal@example.com", ttl=timedelta(seconds=-1)),
        "not a jwt": "abc.def",
    }
    for what, token in forged.items():
        response = await auth.me(token)
        assert response.status_code == 401, what
    assert (await auth.http.get("/api/auth/me")).status_code == 401
    assert (await auth.me(good)).status_code == 200
