"""Accounts and JWTs against the real app and PostgreSQL, including every rejected-token case."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient

from clawhost_control_api.core.config import Settings

JwtKeys = Any

pytestmark = pytest.mark.services

PASSWORD = "correct horse battery"


def _signup_login(client: TestClient) -> tuple[str, dict[str, str]]:
    email = f"u{uuid.uuid4().hex[:8]}@example.com"
    assert client.post("/auth/signup", json={"email": email, "password": PASSWORD}).status_code == 201
    response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return email, response.json()


def _me(client: TestClient, token: str) -> int:
    return client.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(client: TestClient, token: str) -> dict[str, object]:
    payload: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return payload


def test_signup_stores_argon2_hash_and_login_returns_working_tokens(client: TestClient, settings: Settings) -> None:
    email, tokens = _signup_login(client)
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        row = conn.execute("SELECT password_hash FROM users WHERE email = %s", (email,)).fetchone()
    assert row is not None
    assert row[0].startswith("$argon2id$")
    assert PASSWORD not in row[0]
    me = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200
    assert me.json()["email"] == email
    claims = _claims(client, tokens["access_token"])
    assert claims["exp"] - claims["iat"] == 3600  # type: ignore[operator]
    refresh_claims = _claims(client, tokens["refresh_token"])
    assert refresh_claims["exp"] - refresh_claims["iat"] == 7 * 24 * 3600  # type: ignore[operator]
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "RS256"


def test_duplicate_email_and_wrong_password_and_bad_input(client: TestClient) -> None:
    email, _ = _signup_login(client)
    assert client.post("/auth/signup", json={"email": email, "password": PASSWORD}).status_code == 409
    assert client.post("/auth/login", json={"email": email, "password": "wrong password!"}).status_code == 401
    assert client.post("/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}).status_code == 401
    short = client.post("/auth/signup", json={"email": "a@example.com", "password": "short"})
    assert short.status_code == 422
    assert "password" in short.text
    assert client.post("/auth/signup", json={"email": "not-an-email", "password": PASSWORD}).status_code == 422


def test_jwks_serves_the_public_key_that_verifies_tokens(client: TestClient) -> None:
    _, tokens = _signup_login(client)
    jwks = client.get("/.well-known/jwks.json").json()
    (key,) = jwks["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert "d" not in key
    public = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(key))
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == key["kid"]
    jwt.decode(tokens["access_token"], public, algorithms=["RS256"], audience="clawhost-dashboard")  # type: ignore[arg-type]


def test_refresh_rotates_and_reuse_revokes_the_family(client: TestClient) -> None:
    _, first = _signup_login(client)
    second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert _me(client, new["access_token"]) == 200
    # Replaying the used token is theft: rejected, and the whole family dies.
    assert client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401
    assert _me(client, new["access_token"]) == 401


def test_logout_revokes_refresh_and_access(client: TestClient) -> None:
    _, tokens = _signup_login(client)
    _, other = _signup_login(client)
    assert client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert _me(client, tokens["access_token"]) == 401
    assert _me(client, other["access_token"]) == 200


def _forge(keys: JwtKeys, claims: dict[str, object], **overrides: object) -> str:
    payload = {**claims, **overrides}
    return jwt.encode(payload, keys.private_key, algorithm="RS256", headers={"kid": "clawhost-1"})


def test_rejected_tokens(client: TestClient, jwt_keys: JwtKeys, other_jwt_keys: JwtKeys) -> None:
    _, tokens = _signup_login(client)
    good = tokens["access_token"]
    claims = _claims(client, good)
    assert _me(client, _forge(jwt_keys, claims)) == 200  # the forger itself is sound

    header, payload, signature = good.split(".")
    tampered_payload = _b64(json.dumps({**claims, "sub": str(uuid.uuid4())}).encode())
    assert _me(client, f"{header}.{tampered_payload}.{signature}") == 401, "tampered"

    now = int(time.time())
    assert _me(client, _forge(jwt_keys, claims, iat=now - 7200, exp=now - 3600)) == 401, "expired"

    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    assert _me(client, f"{none_header}.{payload}.") == 401, "alg none"

    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "clawhost-1"}).encode())
    signing_input = f"{hs_header}.{payload}".encode()
    mac = hmac.new(jwt_keys.public_pem, signing_input, hashlib.sha256).digest()
    assert _me(client, f"{hs_header}.{payload}.{_b64(mac)}") == 401, "HS256 with the public key"

    assert _me(client, _forge(jwt_keys, claims, aud="someone-else")) == 401, "wrong audience"
    assert _me(client, _forge(jwt_keys, claims, iss="https://evil.example")) == 401, "wrong issuer"
    assert _me(client, _forge(jwt_keys, {k: v for k, v in claims.items() if k != "exp"})) == 401, "no exp"
    assert _me(client, tokens["refresh_token"]) == 401, "refresh token used as access token"

    assert _me(client, _forge(other_jwt_keys, claims)) == 401, "signed by another key"
    assert _me(client, "not.a.jwt") == 401
    assert client.get("/auth/me").status_code == 401


def test_expired_or_misused_refresh_tokens_are_refused(client: TestClient, jwt_keys: JwtKeys) -> None:
    _, tokens = _signup_login(client)
    claims = _claims(client, tokens["refresh_token"])
    now = int(time.time())
    expired = _forge(jwt_keys, claims, iat=now - 8 * 24 * 3600, exp=now - 24 * 3600)
    assert client.post("/auth/refresh", json={"refresh_token": expired}).status_code == 401, "expired"
    assert client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401, "access"
    wrong_aud = _forge(jwt_keys, claims, aud="someone-else")
    assert client.post("/auth/refresh", json={"refresh_token": wrong_aud}).status_code == 401, "audience"
    assert client.post("/auth/logout", json={"refresh_token": expired}).status_code == 401
    # The untouched token still works: nothing above consumed it.
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
