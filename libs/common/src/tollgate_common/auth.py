"""Local verification of Tollgate access tokens against identity's public keys.

Tokens are ES256 JWTs (RFC 7519) signed by identity. Following the JWT BCP (RFC 8725)
the accepted algorithm is pinned, the key is chosen by ``kid`` from the JWK Set only,
and issuer, audience and expiry are always checked.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from tollgate_common.context import Principal
from tollgate_common.errors import AuthenticationRequired

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "org", "role"]

JwksFetcher = Callable[[], Awaitable[list[dict[str, Any]]]]


class JwksCache:
    """Public keys by ``kid``, refreshed on an unknown one at most every few seconds."""

    def __init__(self, fetch: JwksFetcher, min_refresh_seconds: float = 10.0) -> None:
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id, fetching the set again if it is not known yet."""
        if kid not in self._keys:
            await self._refresh()
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        async with self._lock:
            # A flood of tokens with bogus kids must not become a flood of fetches.
            if time.monotonic() - self._fetched_at < self._min_refresh:
                return
            self._fetched_at = time.monotonic()
            try:
                jwks = await self._fetch()
            except Exception:
                logger.exception("could not fetch the JWK Set; keeping the old one")
                return
            self._keys = {
                jwk["kid"]: jwt.PyJWK(jwk, algorithm=ALGORITHM)
                for jwk in jwks
                if jwk.get("kid") and jwk.get("alg") == ALGORITHM
            }


class TokenVerifier:
    """Turns a bearer token into a ``Principal``, or raises AuthenticationRequired."""

    def __init__(
        self, keys: JwksCache, issuer: str, audience: str, leeway: float = 30.0
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    async def verify(self, token: str) -> Principal:
        """Verify signature, algorithm, issuer, audience and times of a token."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthenticationRequired("The access token is malformed.") from error
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise AuthenticationRequired("The access token is not signed as expected.")
        key = await self._keys.key(kid)
        if key is None:
            raise AuthenticationRequired("The access token's key is not known.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
            return Principal(
                user_id=uuid.UUID(claims["sub"]),
                organisation_id=uuid.UUID(claims["org"]),
                role=str(claims["role"]),
                token=token,
            )
        except (jwt.PyJWTError, ValueError) as error:
            raise AuthenticationRequired(
                "The access token is invalid or expired."
            ) from error


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` value (RFC 6750), if there is one."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
