"""Users, organisations and login attempts in Postgres."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollgate_common.errors import DependencyUnavailable
from tollgate_common.failures import unreachable
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
    "DELETE FROM login_attempts "
    "WHERE state_hash = :state_hash AND browser_hash = :browser_hash "
    "RETURNING state_hash, browser_hash, nonce, code_verifier, expires_at"
)
_USER_BY_SUBJECT = sa.text(
    f"SELECT {_USER_COLUMNS} FROM users WHERE issuer = :issuer AND subject = :subject"
)
# Two first logins of one account (a double click) queue here, so that the second
# finds the first's user instead of creating a personal organisation nobody uses.
_LOCK_SUBJECT = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
# The unique domain decides which of two racing first logins creates the company's
# organisation: the other's insert waits for it, does nothing, and joins as member.
_CREATE_ORGANISATION = sa.text(
    "INSERT INTO organisations (id, name, slug, domain) "
    "VALUES (:id, :name, :slug, :domain) ON CONFLICT DO NOTHING RETURNING id"
)
_ORGANISATION_BY_DOMAIN = sa.text("SELECT id FROM organisations WHERE domain = :domain")
_CREATE_USER = sa.text(
    f"INSERT INTO users ({_USER_COLUMNS}) VALUES (:id, :issuer, :subject, :email, "
    ":name, :role, :organisation_id, now())"
)
_USER_WITH_ORGANISATION = sa.text(
    "SELECT u.id, u.issuer, u.subject, u.email, u.name, u.role, u.organisation_id, "
    "u.created_at, o.name AS org_name, o.slug AS org_slug, "
    "o.created_at AS org_created_at "
    "FROM users u JOIN organisations o ON o.id = u.organisation_id WHERE u.id = :id"
)
SLUG_ATTEMPTS = 5


@contextlib.asynccontextmanager
async def _available() -> AsyncIterator[None]:
    try:
        yield
    except Exception as error:
        if not unreachable(error):
            raise
        message = "The identity database cannot be reached."
        raise DependencyUnavailable(message) from error


_ACT_FOR = sa.text("SELECT set_config('tollgate.organisation_id', :org, true)")


class PostgresDirectory:
    """``DirectoryPort`` on the identity schema.

    Logins look across organisations (a user by provider subject, an organisation
    by domain) and run on ``login_engine``, the identity ``_system`` role's;
    reading a signed-in user back runs on ``engine``, confined by row-level
    security to the caller's organisation.
    """

    def __init__(self, engine: AsyncEngine, login_engine: AsyncEngine) -> None:
        self._tenant_engine = engine
        self._engine = login_engine

    async def save_attempt(self, attempt: LoginAttempt) -> None:
        """Store an attempt, clearing expired ones on the way."""
        async with _available(), self._engine.begin() as db:
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

    async def take_attempt(
        self, state_hash: str, browser_hash: str
    ) -> LoginAttempt | None:
        """Delete and return the attempt of this state and browser."""
        async with _available(), self._engine.begin() as db:
            row = (
                (
                    await db.execute(
                        _TAKE_ATTEMPT,
                        {"state_hash": state_hash, "browser_hash": browser_hash},
                    )
                )
                .mappings()
                .first()
            )
        return LoginAttempt(**row) if row else None

    async def user_by_subject(self, issuer: str, subject: str) -> User | None:
        """The user of a provider account."""
        async with _available(), self._engine.connect() as db:
            row = await _user_row(db, issuer, subject)
        return _user(row) if row else None

    async def register(self, identity: Identity, plan: OrganisationPlan) -> User:
        """Create the user and, if it is the first, the organisation."""
        async with _available(), self._engine.begin() as db:
            await db.execute(
                _LOCK_SUBJECT, {"key": f"{identity.issuer} {identity.subject}"}
            )
            row = await _user_row(db, identity.issuer, identity.subject)
            if row is not None:
                return _user(row)
            organisation_id, role = await _join_or_create(db, plan)
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
            row = await _user_row(db, identity.issuer, identity.subject)
        return _user(row)

    async def user(
        self, user_id: uuid.UUID, organisation_id: uuid.UUID
    ) -> tuple[User, Organisation] | None:
        """A user and their organisation, as that organisation sees them."""
        async with _available(), self._tenant_engine.begin() as db:
            await db.execute(_ACT_FOR, {"org": str(organisation_id)})
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


async def _user_row(db: AsyncConnection, issuer: str, subject: str) -> Any:
    result = await db.execute(_USER_BY_SUBJECT, {"issuer": issuer, "subject": subject})
    return result.mappings().first()


async def _join_or_create(
    db: AsyncConnection, plan: OrganisationPlan
) -> tuple[uuid.UUID, Role]:
    """The planned organisation's id, and the role its new user gets there."""
    slug = plan.slug
    for _ in range(SLUG_ATTEMPTS):
        parameters = {"id": uuid.uuid4(), "name": plan.name, "domain": plan.domain}
        created = (
            await db.execute(_CREATE_ORGANISATION, {**parameters, "slug": slug})
        ).scalar()
        if created is not None:
            return created, Role.ADMIN
        if plan.domain is not None:
            existing = (
                await db.execute(_ORGANISATION_BY_DOMAIN, {"domain": plan.domain})
            ).scalar()
            if existing is not None:
                return existing, Role.MEMBER
        # The slug is taken by another organisation (``a-b.example`` and
        # ``a.b-example`` share one), so this one gets a suffix.
        slug = f"{plan.slug}-{secrets.token_hex(3)}"
    raise RuntimeError(f"no free slug for {plan.slug!r}")


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
