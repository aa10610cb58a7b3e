"""The OpenID Connect provider: discovery, the code exchange and the ID token.

Authlib builds the authorization request (with PKCE S256) and exchanges the code;
PyJWT verifies the ID token against the provider's JWKS: signature, ``iss``, ``aud``,
``exp`` and ``iat`` with 30 s of leeway, and the ``nonce`` of this attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tollgate_identity.domain.errors import LoginFailed
from tollgate_identity.domain.model import Identity

logger = logging.getLogger(__name__)

GOOGLE_ISSUER = "https://accounts.google.com"
SCOPE = "openid email profile"
LEEWAY_SECONDS = 30
ID_TOKEN_ALGORITHMS = ["RS256", "ES256"]


class OidcProvider:
    """``ProviderPort`` for any OpenID Connect provider found by discovery."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        timeout_seconds: float = 5.0,
        jwks_refresh_seconds: float = 60.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.is_google = self.issuer == GOOGLE_ISSUER
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._http = httpx.AsyncClient(timeout=timeout_seconds)
        self._metadata: dict[str, Any] | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._keys_at = float("-inf")
        self._jwks_refresh = jwks_refresh_seconds
        self._lock = asyncio.Lock()

    async def authorization_url(
        self, state: str, nonce: str, code_verifier: str
    ) -> str:
        """The authorization endpoint with every parameter of a code-flow request."""
        metadata = await self._discover()
        async with self._oauth() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=state,
                nonce=nonce,
                code_verifier=code_verifier,
            )
        return str(url)

    async def identify(
        self, code: str, code_verifier: str, nonce: str
    ) -> tuple[Identity, bool]:
        """Exchange the code and verify the ID token that comes back."""
        metadata = await self._discover()
        async with self._oauth() as client:
            token = await client.fetch_token(
                metadata["token_endpoint"],
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        id_token = token.get("id_token")
        if not id_token:
            raise LoginFailed("The identity provider returned no ID token.")
        claims = await self._verify(id_token, nonce)
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise LoginFailed("The identity provider gave no e-mail address.")
        identity = Identity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=email,
            name=str(claims.get("name") or email),
            hosted_domain=claims.get("hd"),
        )
        return identity, claims.get("email_verified") is True

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    def _oauth(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            redirect_uri=self._redirect_uri,
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=self._http.timeout,
        )

    async def _discover(self) -> dict[str, Any]:
        if self._metadata is None:
            response = await self._http.get(
                f"{self.issuer}/.well-known/openid-configuration"
            )
            response.raise_for_status()
            metadata = response.json()
            if metadata.get("issuer", "").rstrip("/") != self.issuer:
                raise LoginFailed("The provider's discovery names another issuer.")
            self._metadata = metadata
        return self._metadata

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = await self._key(kid)
            claims = jwt.decode(
                id_token,
                key,
                algorithms=ID_TOKEN_ALGORITHMS,
                audience=self._client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as error:
            raise LoginFailed(f"The ID token is invalid: {error}") from error
        if claims.get("nonce") != nonce:
            raise LoginFailed("The ID token's nonce does not match this login.")
        return claims

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        key = self._find(kid)
        if key is None:
            async with self._lock:
                if (
                    time.monotonic() - self._keys_at > self._jwks_refresh
                    or not self._keys
                ):
                    await self._fetch_keys()
            key = self._find(kid)
        if key is None:
            raise LoginFailed("The ID token is signed by an unknown key.")
        return key

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is not None:
            return self._keys.get(kid)
        # Some providers (the development mock among them) send no kid; with a
        # single published key there is no ambiguity about which one to use.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _fetch_keys(self) -> None:
        metadata = await self._discover()
        response = await self._http.get(metadata["jwks_uri"])
        response.raise_for_status()
        keys = {}
        for jwk in response.json().get("keys", []):
            if jwk.get("use", "sig") != "sig":
                continue
            try:
                keys[jwk.get("kid")] = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                logger.warning("skipping an unusable provider key")
        self._keys, self._keys_at = keys, time.monotonic()
