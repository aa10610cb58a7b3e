"""Login with OpenID Connect (authorization code flow with PKCE) and token issue.

The ``state`` is random, stored server-side as a hash with a short expiry, single
use, and bound to the browser by a cookie holding a second secret (RFC 9700 §4.7.1):
an attempt is taken only by the browser that started it. The PKCE verifier (RFC 7636,
S256, RFC 9700 §2.1.1) and the ``nonce`` (OIDC Core §3.1.2.1) stay on the server with
the attempt. Every failure of the callback is a ``LoginFailed`` (a provider that
cannot be reached is ``DependencyUnavailable``), and nothing is written before the
provider vouched for the user.

Identity talks to one provider only, so the callback's ``iss`` parameter (RFC 9207,
the mix-up defence of RFC 9700 §4.4) is not checked; a second provider would need it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tollgate_common.errors import DependencyUnavailable
from tollgate_identity.domain.errors import LoginFailed, UserNotFound
from tollgate_identity.domain.model import Organisation, User, plan_organisation
from tollgate_identity.service_layer.ports import (
    DirectoryPort,
    LoginAttempt,
    ProviderPort,
    SignerPort,
)

logger = logging.getLogger(__name__)

_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


@dataclass(frozen=True, slots=True)
class LoginStart:
    """Where to send the browser, and the secret its login cookie must carry."""

    authorization_url: str
    browser_secret: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """An access token and its lifetime."""

    access_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    """What tokens say and how long they last."""

    issuer: str
    audience: str
    lifetime: timedelta


class Login:
    """Starting and completing logins, and reading the caller back."""

    def __init__(
        self,
        provider: ProviderPort,
        directory: DirectoryPort,
        signer: SignerPort,
        policy: TokenPolicy,
        consumer_domains: frozenset[str],
        attempt_lifetime: timedelta,
    ) -> None:
        self._provider = provider
        self._directory = directory
        self._signer = signer
        self._policy = policy
        self._consumer_domains = consumer_domains
        self._attempt_lifetime = attempt_lifetime

    async def start(self) -> LoginStart:
        """Record a fresh attempt and build the provider's authorization URL."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, browser = secrets.token_urlsafe(64), secrets.token_urlsafe(32)
        try:
            url = await self._provider.authorization_url(state, nonce, verifier)
        except Exception as error:
            logger.exception("identity provider unreachable")
            raise DependencyUnavailable(
                "The identity provider cannot be reached."
            ) from error
        await self._directory.save_attempt(
            LoginAttempt(
                state_hash=_hash(state),
                browser_hash=_hash(browser),
                nonce=nonce,
                code_verifier=verifier,
                expires_at=datetime.now(UTC) + self._attempt_lifetime,
            )
        )
        return LoginStart(url, browser)

    async def complete(
        self, code: str, state: str, error: str, browser_secret: str | None
    ) -> IssuedToken:
        """Check the callback, exchange the code, find or create the user, sign."""
        try:
            return await self._complete(code, state, error, browser_secret)
        except LoginFailed as failure:
            logger.info("login failed: %s", failure.message)
            raise

    async def _complete(
        self, code: str, state: str, error: str, browser_secret: str | None
    ) -> IssuedToken:
        if error:
            # The provider's code is echoed only if it looks like one (RFC 6749
            # §4.1.2.1); anything else in the query is the visitor's own text.
            said = error if _ERROR_CODE.fullmatch(error) else "an error"
            raise LoginFailed(f"The identity provider refused the login: {said}.")
        if not code or not state:
            raise LoginFailed("The callback has no code or no state.")
        if not browser_secret:
            raise LoginFailed("The login was not started in this browser.")
        attempt = await self._directory.take_attempt(
            _hash(state), _hash(browser_secret)
        )
        if attempt is None or attempt.expires_at < datetime.now(UTC):
            raise LoginFailed(
                "The login state is unknown, used, expired or from another browser."
            )
        try:
            identity, verified = await self._provider.identify(
                code, attempt.code_verifier, attempt.nonce
            )
        except (LoginFailed, DependencyUnavailable):
            raise
        except Exception as failure:
            logger.warning("code exchange failed: %s", type(failure).__name__)
            raise LoginFailed(
                "The identity provider did not accept the code."
            ) from failure
        if not verified:
            raise LoginFailed("The e-mail address is not verified.")

        # Nothing was written so far: a failed login leaves no user behind.
        user = await self._directory.user_by_subject(identity.issuer, identity.subject)
        if user is None:
            plan = plan_organisation(
                identity, self._consumer_domains, self._provider.is_google
            )
            user = await self._directory.register(identity, plan)
            logger.info(
                "user registered",
                extra={"fields": {"user_id": str(user.id), "role": user.role.value}},
            )
        return self._issue(user)

    async def me(
        self, user_id: uuid.UUID, organisation_id: uuid.UUID
    ) -> tuple[User, Organisation]:
        """The caller and their organisation."""
        found = await self._directory.user(user_id, organisation_id)
        if found is None:
            raise UserNotFound("The user of this token no longer exists.")
        return found

    def _issue(self, user: User) -> IssuedToken:
        now = datetime.now(UTC)
        lifetime = int(self._policy.lifetime.total_seconds())
        token = self._signer.sign(
            {
                "iss": self._policy.issuer,
                "aud": self._policy.audience,
                "sub": str(user.id),
                "org": str(user.organisation_id),
                "role": user.role.value,
                "iat": int(now.timestamp()),
                "nbf": int(now.timestamp()),
                "exp": int(now.timestamp()) + lifetime,
                "jti": uuid.uuid4().hex,
            }
        )
        return IssuedToken(token, lifetime)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
