"""Sign-up, login, refresh-token rotation, logout and the JWKS document."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from clawhost_control_api.api.client_ip import client_ip
from clawhost_control_api.api.deps import CurrentUser, State
from clawhost_control_api.api.errors import responses
from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.errors import BusyError
from clawhost_control_api.core.security import InvalidTokenError
from clawhost_control_api.db import accounts

router = APIRouter(tags=["auth"])

# No whitespace or control characters (PostgreSQL text cannot hold NUL; logs must not hold newlines).
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"


class Credentials(BaseModel):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    password: str = Field(min_length=10, max_length=256)


class LoginRequest(BaseModel):
    email: str = Field(pattern=EMAIL_PATTERN, max_length=254)
    password: str = Field(max_length=256)


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=4096)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    customer_name: str | None


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_in: int


def _user_out(user: accounts.User) -> UserOut:
    return UserOut(id=user.id, email=user.email, customer_name=user.customer_name)


def _ip(request: Request, state: AppState) -> str:
    return client_ip(request, state.settings.trusted_proxies)


@router.post("/auth/signup", status_code=status.HTTP_201_CREATED, responses=responses(400, 409, 422, 429, 503))
async def signup(body: Credentials, request: Request, state: State) -> UserOut:
    return _user_out(await create_account(state, body.email, body.password, _ip(request, state)))


async def create_account(state: AppState, email: str, password: str, ip: str) -> accounts.User:
    """A new account (the JSON route and the site's form share it): limits first, then the hash, then the row."""
    email = email.strip().lower()
    await state.limiter.check("signup", ip, email)
    try:
        return await accounts.create_user(state.pool, email, await state.passwords.hash(password))
    except accounts.EmailTakenError:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="an account with this email exists") from None


@router.post("/auth/login", responses=responses(400, 401, 422, 429, 503))
async def login(body: LoginRequest, request: Request, state: State) -> TokenPair:
    _, pair = await log_in(state, body.email, body.password, _ip(request, state))
    return pair


async def log_in(state: AppState, email: str, password: str, ip: str) -> tuple[accounts.User, TokenPair]:
    """Check the password and open a session (the JSON route and the site's form share it)."""
    email = email.strip().lower()
    # Limits first: a refused attempt costs a Redis round trip, never an argon2 hash.
    await state.limiter.check("login", ip, email)
    user = await accounts.find_user_by_email(state.pool, email)
    try:
        verified = await state.passwords.verify(user.password_hash if user else None, password)
    except BusyError:
        state.metrics.logins_refused.labels(reason="busy").inc()
        raise
    if not verified or user is None:
        state.metrics.logins_refused.labels(reason="wrong_credentials").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong email or password")
    return user, await open_session(state, user)


async def open_session(state: AppState, user: accounts.User) -> TokenPair:
    """A new session (refresh-token family) for a user whose identity is already proven."""
    refresh = state.issuer.issue(str(user.id), "", "refresh")
    session_id = await accounts.open_session(state.pool, user.id, refresh.token_id, refresh.expires_at)
    return _pair(state, user.id, session_id, refresh.token_id)


def _pair(state: AppState, user_id: uuid.UUID, session_id: uuid.UUID, refresh_jti: str) -> TokenPair:
    issuer = state.issuer
    access = issuer.issue(str(user_id), str(session_id), "access")
    refresh = issuer.issue(str(user_id), str(session_id), "refresh")
    refresh = type(refresh)(refresh.subject, refresh.session_id, refresh_jti, "refresh", refresh.expires_at)
    return TokenPair(
        access_token=issuer.encode(access),
        refresh_token=issuer.encode(refresh),
        expires_in=int(issuer.access_ttl.total_seconds()),
    )


def _refresh_claims(state: AppState, token: str) -> tuple[uuid.UUID, uuid.UUID, str]:
    try:
        claims = state.issuer.decode(token, "refresh")
        return uuid.UUID(claims.subject), uuid.UUID(claims.session_id), claims.token_id
    except (InvalidTokenError, ValueError):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="invalid refresh token") from None


@router.post("/auth/refresh", responses=responses(400, 401, 422, 429))
async def refresh(body: RefreshRequest, request: Request, state: State) -> TokenPair:
    await state.limiter.check("refresh", _ip(request, state))
    user_id, session_id, old_jti = _refresh_claims(state, body.refresh_token)
    await state.limiter.check_account("refresh", str(user_id))
    new = state.issuer.issue(str(user_id), str(session_id), "refresh")
    try:
        await accounts.rotate_refresh(state.pool, session_id, old_jti, new.token_id, new.expires_at)
    except accounts.RefreshRejectedError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="refresh token revoked or already used") from None
    return _pair(state, user_id, session_id, new.token_id)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, responses=responses(400, 401, 422))
async def logout(body: RefreshRequest, state: State) -> Response:
    _, session_id, _ = _refresh_claims(state, body.refresh_token)
    await accounts.revoke_session(state.pool, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", responses=responses(401))
async def me(user: CurrentUser) -> UserOut:
    return _user_out(user)


@router.get("/.well-known/jwks.json")
async def jwks(state: State) -> dict[str, Any]:
    return state.issuer.keys.jwks()
