"""Request dependencies: the app state and the authenticated user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from clawhost_control_api.api.state import AppState
from clawhost_control_api.core.security import InvalidTokenError, TokenClaims
from clawhost_control_api.db import accounts
from clawhost_control_api.kube.client import KubeClient

_bearer = HTTPBearer(auto_error=False)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.clawhost
    return state


State = Annotated[AppState, Depends(get_state)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class SignedIn:
    """The user of a request and what their access token says (when it expires, which session it belongs to)."""

    user: accounts.User
    claims: TokenClaims


class SessionRevokedError(InvalidTokenError):
    """A well-signed access token of a session that was logged out or revoked."""


async def sign_in_with(state: AppState, token: str) -> SignedIn:
    """Who an access token speaks for: signature, claims and a live session (the routes' bearer and the chat's
    `authenticate` frame alike), or InvalidTokenError."""
    try:
        claims = state.issuer.decode(token, "access")
        user_id = uuid.UUID(claims.subject)
        session_id = uuid.UUID(claims.session_id)
    except ValueError:
        raise InvalidTokenError("invalid token") from None
    user = await accounts.session_user(state.pool, session_id, user_id)
    if user is None:
        raise SessionRevokedError("session revoked")
    return SignedIn(user, claims)


async def signed_in(
    state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> SignedIn:
    if credentials is None:
        raise _unauthorized("missing bearer token")
    try:
        return await sign_in_with(state, credentials.credentials)
    except SessionRevokedError:
        raise _unauthorized("session revoked") from None
    except InvalidTokenError:
        raise _unauthorized("invalid token") from None


async def current_user(session: Annotated[SignedIn, Depends(signed_in)]) -> accounts.User:
    return session.user


def get_kube(state: State) -> KubeClient:
    if state.kube is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="Kubernetes API not configured")
    return state.kube


Kube = Annotated[KubeClient, Depends(get_kube)]

CurrentUser = Annotated[accounts.User, Depends(current_user)]
CurrentSession = Annotated[SignedIn, Depends(signed_in)]
