"""Forged, tampered, expired and revoked tokens, against every service through the gateway.

Each forged token carries the real admin's claims, so a service that accepted it would hand out admin powers;
each attack has a control (the genuine token passes the same probe), so none of these tests can pass by accident.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from shop import SERVICES, Shop

# One authenticated call per service; with a good token none answers 401.
PROBES = {
    "auth": ("GET", "/api/auth/me", None),
    "products": ("POST", "/api/products/999999999/reviews", {"rating": 5, "comment": "fine"}),
    "orders": ("GET", "/api/orders", None),
    "notifications": ("GET", "/api/notifications", None),
    "analytics": ("GET", "/api/analytics/summary", None),
}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict, claims: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def forge(attack: str, genuine: str, private_pem: str, public_pem: str) -> str:
    claims = claims_of(genuine)
    if attack == "alg none":
        return unsigned({"alg": "none", "typ": "JWT"}, claims) + "."
    if attack == "HS256 signed with the public key":
        head = unsigned({"alg": "HS256", "typ": "JWT"}, claims)
        return f"{head}.{b64(hmac.new(public_pem.encode(), head.encode(), hashlib.sha256).digest())}"
    if attack == "bad signature":
        head, payload, signature = genuine.split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
        raw[0] ^= 0xFF
        return f"{head}.{payload}.{b64(bytes(raw))}"
    if attack == "claims changed after signing":
        head, _, signature = genuine.split(".")
        return f"{head}.{b64(json.dumps(claims | {'sub': '1', 'role': 'admin'}).encode())}.{signature}"
    if attack == "signed by another key":
        return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    if attack == "expired":
        return jwt.encode(claims | {"exp": datetime.now(UTC) - timedelta(minutes=1)}, private_pem, algorithm="EdDSA")
    raise AssertionError(attack)


ATTACKS = ["alg none", "HS256 signed with the public key", "bad signature", "claims changed after signing",
           "signed by another key", "expired"]


async def call(http, service: str, token: str):
    method, path, body = PROBES[service]
    return await http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
async def admin_token(stack, http) -> str:
    response = await http.post("/api/auth/login", json={"email": stack.admin_email, "password": stack.admin_password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


# What each probe answers the genuine admin: past the token check, the service's own rule decides.
ADMIN_ANSWERS = {"auth": 200, "orders": 200, "notifications": 200, "analytics": 200, "products": 403}


@pytest.mark.parametrize("service", SERVICES)
async def test_the_genuine_admin_token_passes_every_probe(http, admin_token, service):
    response = await call(http, service, admin_token)
    assert response.status_code == ADMIN_ANSWERS[service], response.text
    if service == "products":  # refused for being an admin, so the token itself was accepted
        assert response.json() == {"detail": "only customers review products"}


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("service", SERVICES)
async def test_a_forged_or_expired_token_is_refused(stack, http, admin_token, service, attack):
    private_pem = (stack.run_dir / "keys" / "jwt_private.pem").read_text()
    public_pem = (stack.run_dir / "keys" / "jwt_public.pem").read_text()
    response = await call(http, service, forge(attack, admin_token, private_pem, public_pem))
    assert response.status_code == 401, (attack, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json") and "detail" in response.json()


@pytest.mark.parametrize("service", SERVICES)
async def test_a_refresh_token_is_no_access_token(http, stack, service):
    login = await http.post("/api/auth/login", json={"email": stack.admin_email, "password": stack.admin_password})
    response = await call(http, service, login.json()["refresh_token"])
    assert response.status_code == 401


async def test_a_spent_refresh_token_is_refused_and_revokes_its_login(http, stack):
    shop = Shop(http, stack)
    customer = await shop.customer()
    first = (await shop.login(customer.email, customer.password)).json()
    renewed = await http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert renewed.status_code == 200
    again = await http.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert again.status_code == 401
    # Reuse means theft: the pair handed out by the first renewal dies with it.
    stolen = await http.post("/api/auth/refresh", json={"refresh_token": renewed.json()["refresh_token"]})
    assert stolen.status_code == 401


async def test_a_made_up_refresh_token_is_refused(http):
    response = await http.post("/api/auth/refresh", json={"refresh_token": uuid.uuid4().hex})
    assert response.status_code == 401


async def test_a_banned_users_unexpired_token_is_refused_by_the_services_that_act_for_users(http, stack):
    """Orders and products take UserBanned and refuse the token at once (403); auth refuses login and refresh
    and shows the ban on /me; notifications still lets the user read their own notices (the ban mail among
    them); analytics is admin-only, and its admin check is the token's role."""
    shop = Shop(http, stack)
    customer = await shop.customer()
    pair = (await shop.login(customer.email, customer.password)).json()
    product = await shop.product(price="5.00", stock=5)
    before = await shop.place(customer, (product["id"], 1))
    assert before.status_code == 201, before.text

    banned = await http.post(f"/api/auth/users/{customer.id}/ban", json={"reason": "fraud"}, headers=await shop.admin())
    assert banned.status_code == 200, banned.text

    async def refused_by(service: str) -> bool:
        return (await call(http, service, customer.token)).status_code == 403

    from shop import eventually

    await eventually(lambda: refused_by("orders"))
    await eventually(lambda: refused_by("products"))
    place = await http.post("/api/orders", json={"items": [{"product_id": product["id"], "quantity": 1}]}, headers=customer.auth)
    assert place.status_code == 403
    assert (await http.get(f"/api/orders/{before.json()['id']}", headers=customer.auth)).status_code == 403

    assert (await shop.login(customer.email, customer.password)).status_code == 403
    assert (await http.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})).status_code == 401
    me = await call(http, "auth", customer.token)
    assert me.status_code == 200 and me.json()["banned"] is True
    assert (await call(http, "notifications", customer.token)).status_code == 200
    assert (await call(http, "analytics", customer.token)).status_code == 403
