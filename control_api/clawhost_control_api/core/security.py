"""RS256 JWTs: signing, strict verification and the JWKS document."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from clawhost_control_api.core.errors import ControlApiError

TokenType = Literal["access", "refresh"]
ALGORITHM = "RS256"


class InvalidTokenError(ControlApiError):
    """A token that is malformed, badly signed, expired or meant for someone else."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    session_id: str
    token_id: str
    token_type: TokenType
    expires_at: datetime


@dataclass(frozen=True)
class KeyPair:
    private_key: RSAPrivateKey
    public_key: RSAPublicKey
    key_id: str

    @classmethod
    def from_files(cls, private_file: Path, public_file: Path, key_id: str) -> KeyPair:
        private = serialization.load_pem_private_key(private_file.read_bytes(), password=None)
        public = serialization.load_pem_public_key(public_file.read_bytes())
        if not isinstance(private, RSAPrivateKey) or not isinstance(public, RSAPublicKey):
            raise ValueError("JWT keys must be RSA keys in PEM format")
        return cls(private, public, key_id)

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.public_key))
        jwk.update({"kid": self.key_id, "use": "sig", "alg": ALGORITHM})
        return {"keys": [jwk]}


@dataclass(frozen=True)
class TokenIssuer:
    keys: KeyPair
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta

    def issue(self, subject: str, session_id: str, token_type: TokenType, now: datetime | None = None) -> TokenClaims:
        moment = now or datetime.now(UTC)
        ttl = self.access_ttl if token_type == "access" else self.refresh_ttl  # noqa: S105
        return TokenClaims(subject, session_id, uuid.uuid4().hex, token_type, moment + ttl)

    def encode(self, claims: TokenClaims) -> str:
        payload = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": claims.subject,
            "sid": claims.session_id,
            "jti": claims.token_id,
            "typ": claims.token_type,
            "iat": int((claims.expires_at - self._ttl(claims.token_type)).timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return jwt.encode(payload, self.keys.private_key, algorithm=ALGORITHM, headers={"kid": self.keys.key_id})

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise InvalidTokenError("unsupported token algorithm")
            payload = jwt.decode(
                token,
                self.keys.public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(type(error).__name__) from None
        if payload.get("typ") != expected_type or not isinstance(payload.get("sid"), str):
            raise InvalidTokenError("wrong token type")
        return TokenClaims(
            str(payload["sub"]),
            payload["sid"],
            str(payload["jti"]),
            expected_type,
            datetime.fromtimestamp(int(payload["exp"]), UTC),
        )

    def _ttl(self, token_type: TokenType) -> timedelta:
        return self.access_ttl if token_type == "access" else self.refresh_ttl  # noqa: S105
