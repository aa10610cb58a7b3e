"""Users, organisations and login attempts in Postgres."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_identity.domain.model import (
    Identity,
    Organisation,
    OrganisationPlan,
    Role,
    User,
)
from tollgate_identity.service_layer.ports import LoginAttempt

_USER_COLUMNS = "id, issuer, subject, email, name, role, organisation_id, created_at"

_SAVE_ATTEMPT = sa.text(
    "INSERT INTO login_attempts (state_hash, browser_hash, nonce, code_verifier, "
    "expires_at) VALUES (:state_hash, :browser_hash, :nonce, :code_verifier, "
    ":expires_at)"
)
_PRUNE_ATTEMPTS = sa.text("DELETE FROM login_attempts WHERE expires_at < now()")
_TAKE_ATTEMPT = sa.text(
    "DELETE FROM login_attempts WHERE state_hash = :state_hash "
    "RETURNING state_hash, browser_hash, nonce, code_verifier, expires_at"
)
_USER_BY_SUBJECT = sa.text(
    f"SELECT {_USER_COLUMNS} FROM users WHERE issuer = :issuer AND subject = :subject"
)
# The unique domain decides which of two racing first logins creates the company's
# organisation: the other's insert waits for it, does nothing, and joins as member.
_CREATE_ORGANISATION = sa.text(
    "INSERT INTO organisations (id, name, slug, domain) "
    "VALUES (:id, :name, :slug, :domain) ON CONFLICT DO NOTHING RETURNING id"
)
_ORGANISATION_BY_DOMAIN = sa.text("SELECT id FROM organisations WHERE domain = :domain")
_CREATE_USER = sa.text(
    f"INSERT INTO users ({_USER_COLUMNS}) VALUES (:id, :issuer, :subject, :email, "
    ":name, :role, :organisation_id, now()) ON CONFLICT (issuer, subject) DO NOTHING"
)
_USER_WITH_ORGANISATION = sa.text(
    "SELECT u.id, u.issuer, u.subject, u.email, u.name, u.role, u.organisation_id, "
    "u.created_at, o.name AS org_name, o.slug AS org_slug, "
    "o.created_at AS org_created_at "
    "FROM users u JOIN organisations o ON o.id = u.organisation_id WHERE u.id = :id"
)


class PostgresDirectory:
    """``DirectoryPort`` on the identity schema."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def save_attempt(self, attempt: LoginAttempt) -> None:
        """Store an attempt, clearing expired ones on the way."""
        async with self._engine.begin() as db:
            await db.execute(_PRUNE_ATTEMPTS)
            await db.execute(
                _SAVE_ATTEMPT,
                {
                    "state_hash": attempt.state_hash,
                    "browser_hash": attempt.browser_hash,
                    "nonce": attempt.nonce,
                    "code_verifier": attempt.code_verifier,
                    "expires_at": attempt.expires_at,
                },
            )

    async def take_attempt(self, state_hash: str) -> LoginAttempt | None:
        """Delete and return an attempt."""
        async with self._engine.begin() as db:
            row = (
                (await db.execute(_TAKE_ATTEMPT, {"state_hash": state_hash}))
                .mappings()
                .first()
            )
        return LoginAttempt(**row) if row else None

    async def user_by_subject(self, issuer: str, subject: str) -> User | None:
        """The user of a provider account."""
        async with self._engine.connect() as db:
            row = (
                (
                    await db.execute(
                        _USER_BY_SUBJECT, {"issuer": issuer, "subject": subject}
                    )
                )
                .mappings()
                .first()
            )
        return _user(row) if row else None

    async def register(self, identity: Identity, plan: OrganisationPlan) -> User:
        """Create the user and, if it is the first, the organisation."""
        async with self._engine.begin() as db:
            created = (
                await db.execute(
                    _CREATE_ORGANISATION,
                    {
                        "id": uuid.uuid4(),
                        "name": plan.name,
                        "slug": plan.slug,
                        "domain": plan.domain,
                    },
                )
            ).scalar()
            if created is not None:
                organisation_id, role = created, Role.ADMIN
            else:
                organisation_id = (
                    await db.execute(_ORGANISATION_BY_DOMAIN, {"domain": plan.domain})
                ).scalar_one()
                role = Role.MEMBER
            await db.execute(
                _CREATE_USER,
                {
                    "id": uuid.uuid4(),
                    "issuer": identity.issuer,
                    "subject": identity.subject,
                    "email": identity.email,
                    "name": identity.name,
                    "role": role.value,
                    "organisation_id": organisation_id,
                },
            )
            row = (
                (
                    await db.execute(
                        _USER_BY_SUBJECT,
                        {"issuer": identity.issuer, "subject": identity.subject},
                    )
                )
                .mappings()
                .one()
            )
        return _user(row)

    async def user(self, user_id: uuid.UUID) -> tuple[User, Organisation] | None:
        """A user and their organisation."""
        async with self._engine.connect() as db:
            row = (
                (await db.execute(_USER_WITH_ORGANISATION, {"id": user_id}))
                .mappings()
                .first()
            )
        if row is None:
            return None
        organisation = Organisation(
            id=row["organisation_id"],
            name=row["org_name"],
            slug=row["org_slug"],
            created_at=row["org_created_at"],
        )
        return _user(row), organisation


def _user(row: Any) -> User:
    return User(
        id=row["id"],
        issuer=row["issuer"],
        subject=row["subject"],
        email=row["email"],
        name=row["name"],
        role=Role(row["role"]),
        organisation_id=row["organisation_id"],
        created_at=row["created_at"],
    )
