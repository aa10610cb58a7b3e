"""What identity's use cases need from the outside world."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tollgate_identity.domain.model import (
    Identity,
    Organisation,
    OrganisationPlan,
    User,
)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login between the redirect to the provider and its callback."""

    state_hash: str
    browser_hash: str
    nonce: str
    code_verifier: str
    expires_at: datetime


class ProviderPort(Protocol):
    """The OpenID Connect provider."""

    issuer: str
    is_google: bool

    async def authorization_url(
        self, state: str, nonce: str, code_verifier: str
    ) -> str:
        """Where to send the browser (code flow, PKCE S256)."""

    async def identify(
        self, code: str, code_verifier: str, nonce: str
    ) -> tuple[Identity, bool]:
        """Exchange the code: the verified identity, and is its e-mail verified."""


class DirectoryPort(Protocol):
    """Users, organisations and login attempts."""

    async def save_attempt(self, attempt: LoginAttempt) -> None:
        """Remember a login attempt until its callback."""

    async def take_attempt(
        self, state_hash: str, browser_hash: str
    ) -> LoginAttempt | None:
        """Remove and return the attempt of a state started by this browser.

        Each state works once; a browser that did not start the attempt gets
        nothing and leaves it in place.
        """

    async def user_by_subject(self, issuer: str, subject: str) -> User | None:
        """The user a provider account logs in as."""

    async def register(self, identity: Identity, plan: OrganisationPlan) -> User:
        """Create the user, joining or creating the planned organisation.

        Whoever creates the organisation is its admin; everyone after is a member,
        also when first logins race (the organisation's unique domain decides). If
        the same account registers twice at once, both get the one user.
        """

    async def user(
        self, user_id: uuid.UUID, organisation_id: uuid.UUID
    ) -> tuple[User, Organisation] | None:
        """A user with their organisation, read as that organisation."""


class SignerPort(Protocol):
    """The access-token signing keys."""

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT of the claims, signed by the current key."""

    def jwks(self) -> list[dict[str, str]]:
        """Every public key that may have signed a token still valid."""
