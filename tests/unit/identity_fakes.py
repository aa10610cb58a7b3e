"""In-memory stand-ins for identity's ports, for use-case unit tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from tollgate_identity.domain.model import (
    Identity,
    Organisation,
    OrganisationPlan,
    Role,
    User,
)
from tollgate_identity.service_layer.ports import LoginAttempt


class MemoryDirectory:
    """Attempts, users and organisations in dictionaries."""

    def __init__(self) -> None:
        self.attempts: dict[str, LoginAttempt] = {}
        self.users: dict[tuple[str, str], User] = {}
        self.organisations: dict[str | None, uuid.UUID] = {}
        self.registered: list[Identity] = []

    async def save_attempt(self, attempt: LoginAttempt) -> None:
        """Remember an attempt."""
        self.attempts[attempt.state_hash] = attempt

    async def take_attempt(
        self, state_hash: str, browser_hash: str
    ) -> LoginAttempt | None:
        """Take the attempt of this state if this browser started it."""
        attempt = self.attempts.get(state_hash)
        if attempt is None or attempt.browser_hash != browser_hash:
            return None
        return self.attempts.pop(state_hash)

    async def user_by_subject(self, issuer: str, subject: str) -> User | None:
        """A user by provider account."""
        return self.users.get((issuer, subject))

    async def register(self, identity: Identity, plan: OrganisationPlan) -> User:
        """Join the plan's organisation as member, or create it as admin."""
        self.registered.append(identity)
        known = self.organisations.get(plan.domain) if plan.domain else None
        organisation_id = known or uuid.uuid4()
        if plan.domain:
            self.organisations[plan.domain] = organisation_id
        user = User(
            id=uuid.uuid4(),
            issuer=identity.issuer,
            subject=identity.subject,
            email=identity.email,
            name=identity.name,
            role=Role.MEMBER if known else Role.ADMIN,
            organisation_id=organisation_id,
            created_at=datetime.now(UTC),
        )
        self.users[(identity.issuer, identity.subject)] = user
        return user

    async def user(
        self, user_id: uuid.UUID, organisation_id: uuid.UUID
    ) -> tuple[User, Organisation] | None:
        """A user and a made-up organisation, if it is that organisation's."""
        for user in self.users.values():
            if user.id == user_id and user.organisation_id == organisation_id:
                organisation = Organisation(
                    user.organisation_id, "Org", "org", user.created_at
                )
                return user, organisation
        return None


class StubProvider:
    """A provider that vouches for whatever identity it is given."""

    issuer = "https://idp.example"
    is_google = False

    def __init__(self, email: str = "ada@company.example") -> None:
        self.identity = Identity(self.issuer, "subject-1", email, "Ada", None)
        self.verified = True
        self.failure: Exception | None = None
        self.exchanges: list[tuple[str, str, str]] = []

    async def authorization_url(
        self, state: str, nonce: str, code_verifier: str
    ) -> str:
        """A URL carrying the state."""
        return f"{self.issuer}/authorize?state={state}"

    async def identify(
        self, code: str, code_verifier: str, nonce: str
    ) -> tuple[Identity, bool]:
        """The configured identity, or the configured failure."""
        self.exchanges.append((code, code_verifier, nonce))
        if self.failure is not None:
            raise self.failure
        return self.identity, self.verified
