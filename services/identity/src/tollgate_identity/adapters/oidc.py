"""The OpenID Connect provider: discovery, the code exchange and the ID token.

Authlib builds the authorization request (code flow, PKCE S256, the registered
``redirect_uri``) and exchanges the code with the PKCE verifier and the same
``redirect_uri``; PyJWT verifies the ID token (OIDC Core §3.1.3.7) against the
provider's JWK Set, found by discovery and cached: signature with RS256 or ES256
only, ``iss`` exactly the configured issuer, ``aud`` containing our client id (and
``azp`` naming us when there are several audiences), ``exp`` and ``iat`` with 30 s of
leeway, and the ``nonce`` of this attempt.

A provider that cannot be reached or answers 5xx is ``DependencyUnavailable``;
anything it says or signs that does not check out is ``LoginFailed``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import jwt
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from tollgate_common.auth import JwksCache
from tollgate_common.errors import DependencyUnavailable
from tollgate_identity.domain.errors import LoginFailed
from tollgate_identity.domain.model import Identity

logger = logging.getLogger(__name__)

GOOGLE_ISSUER = "https://accounts.google.com"
SCOPE = "openid email profile"
LEEWAY_SECONDS = 30
ID_TOKEN_ALGORITHMS = ("RS256", "ES256")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


class OidcProvider:
    """``ProviderPort`` for any OpenID Connect provider found by discovery."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        timeout_seconds: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.is_google = self.issuer == GOOGLE_ISSUER
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._timeout = httpx.Timeout(timeout_seconds)
        self._transport = transport
        # Loading the CA bundle takes a tenth of a second, so every client made
        # for a login shares one context instead of reading it again.
        self._tls = httpx.create_ssl_context()
        self._http = httpx.AsyncClient(
            timeout=self._timeout, transport=transport, verify=self._tls
        )
        self._metadata: dict[str, Any] | None = None
        self._keys = JwksCache(self._fetch_keys, algorithms=ID_TOKEN_ALGORITHMS)

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
            token = await _exchange(
                client, metadata["token_endpoint"], code, code_verifier
            )
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise LoginFailed("The identity provider returned no ID token.")
        claims = await self._verify(id_token, nonce)
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise LoginFailed("The identity provider gave no e-mail address.")
        hosted_domain = claims.get("hd")
        identity = Identity(
            issuer=self.issuer,
            subject=str(claims["sub"]),
            email=email,
            name=str(claims.get("name") or email),
            hosted_domain=hosted_domain if isinstance(hosted_domain, str) else None,
        )
        return identity, claims.get("email_verified") is True

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    def _oauth(self) -> AsyncOAuth2Client:
        # One client per login: Authlib keeps the last token response on the
        # client, and a user's provider tokens have no business in shared state.
        return AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            redirect_uri=self._redirect_uri,
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=self._timeout,
            transport=self._transport,
            verify=self._tls,
        )

    async def _discover(self) -> dict[str, Any]:
        if self._metadata is None:
            metadata = await self._get_json(
                f"{self.issuer}/.well-known/openid-configuration"
            )
            # OpenID Connect Discovery §4.3: the document must name the issuer it
            # was fetched for, or an impostor could hand out its own endpoints.
            if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
                raise LoginFailed("The provider's discovery names another issuer.")
            if not all(isinstance(metadata.get(name), str) for name in ENDPOINTS):
                raise LoginFailed("The provider's discovery lacks an endpoint.")
            self._metadata = metadata
        return self._metadata

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(id_token).get("kid")
            # The development provider sends no kid; JwksCache then takes the
            # set's only key, and finds none when the set has several.
            key = await self._keys.key(kid if isinstance(kid, str) else None)
            if key is None and self._keys.unavailable:
                raise DependencyUnavailable("The provider's keys cannot be fetched.")
            if key is None:
                raise LoginFailed("The ID token is signed by an unknown key.")
            claims = jwt.decode(
                id_token,
                key,
                algorithms=list(ID_TOKEN_ALGORITHMS),
                audience=self._client_id,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            )
        except jwt.PyJWTError as error:
            raise LoginFailed(f"The ID token is invalid: {error}") from error
        audiences = claims["aud"] if isinstance(claims["aud"], list) else []
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self._client_id:
            raise LoginFailed("The ID token was issued to another party.")
        if claims.get("nonce") != nonce:
            raise LoginFailed("The ID token's nonce does not match this login.")
        return claims

    async def _fetch_keys(self) -> list[dict[str, Any]]:
        metadata = await self._discover()
        jwks = await self._get_json(metadata["jwks_uri"])
        keys = jwks.get("keys")
        return [key for key in keys if isinstance(key, dict)] if keys else []

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise DependencyUnavailable(
                "The identity provider cannot be reached."
            ) from error
        if not isinstance(document, dict):
            raise DependencyUnavailable("The identity provider answered nonsense.")
        return document


async def _exchange(
    client: AsyncOAuth2Client, token_endpoint: str, code: str, code_verifier: str
) -> dict[str, Any]:
    """The token response for a code (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
    try:
        return dict(
            await client.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        )
    except OAuthError as error:
        # invalid_grant and friends: a used, expired or foreign code.
        raise LoginFailed(
            f"The identity provider did not accept the code: {error.error}."
        ) from error
    except httpx.HTTPStatusError as error:
        if error.response.status_code >= 500:
            raise DependencyUnavailable(
                "The identity provider cannot be reached."
            ) from error
        raise LoginFailed("The identity provider did not accept the code.") from error
    except httpx.HTTPError as error:
        raise DependencyUnavailable(
            "The identity provider cannot be reached."
        ) from error
