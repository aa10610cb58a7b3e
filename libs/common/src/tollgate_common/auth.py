"""Local verification of Tollgate access tokens against identity's public keys.

Tokens are ES256 JWTs (RFC 7519) signed by identity. Following the JWT BCP (RFC 8725)
the accepted algorithm is pinned (§3.1), the key is chosen by ``kid`` from the JWK
Set only, never from a ``jku``, ``jwk`` or ``x5u`` header, and issuer, audience and
the times are always checked (§3.8, §3.9). The key set is cached and fetched again
when a token names a key not seen yet, which is how a key rotation reaches the
services that verify tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import jwt

from tollgate_common.context import ADMIN, MEMBER, Principal
from tollgate_common.errors import AuthenticationRequired, DependencyUnavailable

logger = logging.getLogger(__name__)

ALGORITHM = "ES256"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti", "org", "role"]
ROLES = frozenset({ADMIN, MEMBER})

JwksFetcher = Callable[[], Awaitable[list[dict[str, Any]]]]


class JwksCache:
    """Public keys by ``kid``, fetched again for an unknown one, a few at a time.

    A token naming an unknown key waits for the next fetch that starts after it
    arrived; fetches start at most once every ``min_refresh_seconds`` and are shared
    by every token waiting. So a key that appeared after the last fetch (a rotation)
    is always found, after a wait of at most that interval plus the fetch, while a
    flood of tokens with bogus kids costs one fetch per interval, not one per token;
    each of those tokens is held for up to the interval before it is refused.

    The set is also fetched again, in the background, once it is older than
    ``max_age_seconds``, so that a key withdrawn from the set stops verifying.
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        min_refresh_seconds: float = 1.0,
        max_age_seconds: float = 300.0,
        algorithms: Collection[str] = (ALGORITHM,),
    ) -> None:
        self._fetch = fetch
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._algorithms = frozenset(algorithms)
        self._keys: dict[str | None, jwt.PyJWK] = {}
        # When the last fetch started (monotonic), and whether it failed.
        self._fetched_at = float("-inf")
        self._unavailable = False
        self._scheduled: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def unavailable(self) -> bool:
        """Whether the last fetch failed, so that an unknown key may yet exist."""
        return self._unavailable

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key with this id, fetching the set again if it is not known yet.

        ``None`` as ``kid`` finds the only key of a set that has exactly one: some
        providers send ID tokens without a ``kid``.
        """
        found = self._find(kid)
        if found is not None:
            if time.monotonic() - self._fetched_at > self._max_age:
                self._schedule()
            return found
        await asyncio.shield(self._schedule())
        return self._find(kid)

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    def _schedule(self) -> asyncio.Task[None]:
        if self._scheduled is None or self._scheduled.done():
            delay = self._fetched_at + self._min_refresh - time.monotonic()
            task = asyncio.get_running_loop().create_task(self._refresh(delay))
            self._scheduled = task
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return self._scheduled

    async def _refresh(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        # A token arriving from now on waits for the next fetch: this one may be
        # answered by a key set that was read before that token's key existed.
        self._scheduled = None
        self._fetched_at = time.monotonic()
        try:
            jwks = await self._fetch()
        except Exception:
            self._unavailable = True
            logger.exception("could not fetch the JWK Set; keeping the old one")
            return
        self._keys = self._usable(jwks)
        self._unavailable = False

    def _usable(self, jwks: list[dict[str, Any]]) -> dict[str | None, jwt.PyJWK]:
        keys: dict[str | None, jwt.PyJWK] = {}
        for jwk in jwks:
            try:
                if jwk.get("use", "sig") != "sig":
                    continue
                # The algorithm comes from the key (its alg, else its type), never
                # from a token: an RSA or symmetric key is no ES256 key (§3.1).
                key = jwt.PyJWK(jwk, algorithm=jwk.get("alg") or None)
            except Exception:
                # One malformed entry must not cost the set its good keys.
                logger.warning("skipping an unusable key of the JWK Set")
                continue
            if key.algorithm_name in self._algorithms:
                keys[jwk.get("kid")] = key
        return keys


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
        """Verify signature, algorithm, issuer, audience and times of a token.

        Identity writes ``typ: at+jwt`` in the header (RFC 9068) but it is not
        demanded here: these keys sign access tokens and nothing else, so no other
        kind of JWT of ours can be passed off as one.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise AuthenticationRequired("The access token is malformed.") from error
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise AuthenticationRequired("The access token is not signed as expected.")
        key = await self._keys.key(kid)
        if key is None:
            if self._keys.unavailable:
                raise DependencyUnavailable(
                    "The keys that verify access tokens cannot be fetched."
                )
            raise AuthenticationRequired("The access token's key is not known.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
            if claims["role"] not in ROLES:
                raise ValueError("unknown role")
            return Principal(
                user_id=uuid.UUID(str(claims["sub"])),
                organisation_id=uuid.UUID(str(claims["org"])),
                role=str(claims["role"]),
                token=token,
            )
        except (jwt.PyJWTError, ValueError, TypeError) as error:
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
