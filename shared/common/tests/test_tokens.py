"""Token checks every service relies on: only EdDSA signed by auth's key, unexpired, with the claims."""

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shop_common.auth import InvalidToken, verify_token


def claims(**over):
    return {"sub": "7", "email": "a@example.com", "role": "customer",
            "exp": datetime.now(UTC) + timedelta(minutes=5)} | over


def test_a_token_signed_by_auth_is_accepted(jwt_keys, make_token):
    principal = verify_token(make_token(7, "admin", "boss@example.com"), jwt_keys[1].read_text())
    assert (principal.id, principal.role, principal.email, principal.is_admin) == (7, "admin", "boss@example.com", True)


def _b64(part: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def test_alg_none_is_refused(jwt_keys):
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64({**claims(), 'exp': 9999999999})}."
    with pytest.raises(InvalidToken):
        verify_token(unsigned, jwt_keys[1].read_text())


def test_hmac_signed_with_the_public_key_is_refused(jwt_keys):
    public_pem = jwt_keys[1].read_bytes()
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64({**claims(), "exp": 9999999999})
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        verify_token(f"{header}.{payload}.{signature}", public_pem.decode())


def test_a_token_signed_by_another_key_is_refused(jwt_keys):
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(InvalidToken):
        verify_token(jwt.encode(claims(), other, algorithm="EdDSA"), jwt_keys[1].read_text())


def test_an_expired_token_is_refused(jwt_keys, make_token):
    with pytest.raises(InvalidToken):
        verify_token(make_token(7, ttl=timedelta(seconds=-1)), jwt_keys[1].read_text())


def test_a_token_without_role_is_refused(jwt_keys):
    token = jwt.encode({k: v for k, v in claims().items() if k != "role"}, jwt_keys[0].read_text(), algorithm="EdDSA")
    with pytest.raises(InvalidToken):
        verify_token(token, jwt_keys[1].read_text())


def test_a_token_verified_once_is_taken_again_without_its_signature_checked_until_it_expires(jwt_keys, make_token, monkeypatch):
    import time

    import shop_common.auth as auth

    public = jwt_keys[1].read_text()
    token = make_token(8, ttl=timedelta(seconds=2))
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(auth.jwt, "decode", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    assert [verify_token(token, public).id for _ in range(5)] == [8] * 5
    assert len(decoded) == 1  # the signature was checked once

    time.sleep(2.1)
    with pytest.raises(InvalidToken):  # and the remembered token expires as the token itself does
        verify_token(token, public)
    with pytest.raises(InvalidToken):
        verify_token(token, public)


def test_a_token_verified_under_one_key_is_not_taken_under_another(jwt_keys, make_token):
    token = make_token(9)
    assert verify_token(token, jwt_keys[1].read_text()).id == 9
    other_public = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    with pytest.raises(InvalidToken):
        verify_token(token, other_public)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):  # another string is another token: checked, refused
        verify_token(tampered, jwt_keys[1].read_text())
