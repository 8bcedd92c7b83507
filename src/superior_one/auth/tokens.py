"""Access tokens: short-lived JWTs signed with HS256, the only accepted algorithm."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cachetools import LRUCache

from superior_one.auth import errors
from superior_one.config import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti", "sub", "org", "role", "ver")
# Tokens whose claims one api process remembers: about 1 KiB each. A driver or
# dispatcher has one access token at a time, so this covers 20,000 active users.
VERIFIED_TOKENS_CACHED = 20_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: str
    token_version: int
    jti: str
    expires_at: datetime


def issue_access_token(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    role: str,
    token_version: int,
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    payload = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=settings.access_token_ttl_s)).timestamp()),
        "jti": uuid.uuid4().hex,
        "sub": str(user_id),
        "org": str(organization_id),
        "role": role,
        "ver": token_version,
    }
    return jwt.encode(payload, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verify ``token`` and return its claims, or raise a distinct error per fault."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise errors.TokenMalformedError(
            "The access token is not a well-formed JWT. Log in again to get a new one."
        ) from exc
    if header.get("alg") != ALGORITHM:
        raise errors.TokenAlgorithmRejectedError(
            f"Tokens signed with algorithm {header.get('alg')!r} are not accepted; "
            f"only {ALGORITHM} is. Log in again to get a valid token."
        )

    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise errors.TokenExpiredError(
            "The access token has expired. Call POST /auth/refresh with your refresh token."
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise errors.TokenSignatureInvalidError(
            "The access token's signature does not verify. Log in again."
        ) from exc
    except jwt.DecodeError as exc:
        raise errors.TokenMalformedError(
            "The access token cannot be decoded. Log in again to get a new one."
        ) from exc
    except jwt.InvalidTokenError as exc:
        raise errors.TokenClaimsInvalidError(
            f"The access token's claims are invalid ({exc}). Log in again."
        ) from exc

    try:
        return AccessClaims(
            user_id=uuid.UUID(payload["sub"]),
            organization_id=uuid.UUID(payload["org"]),
            role=str(payload["role"]),
            token_version=int(payload["ver"]),
            jti=str(payload["jti"]),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        # OverflowError and OSError: an exp beyond the dates Python can represent.
        raise errors.TokenClaimsInvalidError(
            "The access token's sub, org, ver or exp claim has the wrong type or range. "
            "Log in again."
        ) from exc


class AccessTokenVerifier:
    """Verify access tokens, remembering the claims of each token already verified.

    A JWT cannot change, so a token that verified once verifies again until it
    expires: a repeat skips the HMAC and the JSON decoding. Revocation is not
    decided here but by the principal's token version, on every request.
    """

    def __init__(self, settings: Settings, maxsize: int = VERIFIED_TOKENS_CACHED) -> None:
        self._settings = settings
        # token -> (claims, exp as Unix time)
        self._verified: LRUCache[str, tuple[AccessClaims, float]] = LRUCache(maxsize=maxsize)

    def verify(self, token: str) -> AccessClaims:
        """Return the token's claims, or raise the same errors as :func:`decode_access_token`."""
        cached = self._verified.get(token)
        # PyJWT rejects a token once exp <= now; the same rule applies to a remembered one.
        if cached is not None and cached[1] > time.time():
            return cached[0]
        claims = decode_access_token(self._settings, token)
        self._verified[token] = (claims, claims.expires_at.timestamp())
        return claims


def new_opaque_token() -> tuple[str, str]:
    """Return a random URL-safe token and its SHA-256 hex digest (what is stored)."""
    token = secrets.token_urlsafe(32)
    return token, hash_opaque_token(token)


def hash_opaque_token(token: str) -> str:
    # A fast hash is right here: the token has 256 bits of entropy, so it needs
    # no password-style stretching, and lookups by hash must be quick.
    return hashlib.sha256(token.encode()).hexdigest()
