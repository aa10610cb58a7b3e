"""Identity's directory against the real Postgres: races, identities, attempts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate_common.errors import DependencyUnavailable
from tollgate_identity.adapters.postgres import PostgresDirectory
from tollgate_identity.domain.model import Identity, Role, plan_organisation
from tollgate_identity.entrypoints.main import consumer_domains
from tollgate_identity.service_layer.ports import LoginAttempt

ISSUER = "https://idp.example"
CONSUMER = consumer_domains()


@pytest.fixture(scope="module")
async def identity_engine(prepared_database) -> AsyncIterator[AsyncEngine]:
    """Identity's own role on the test database (confined by row-level security)."""
    engine = create_async_engine(
        prepared_database.database_url("tollgate_identity"), pool_size=5
    )
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def login_engine(prepared_database) -> AsyncIterator[AsyncEngine]:
    """Identity's login role, with room for concurrent logins."""
    engine = create_async_engine(
        prepared_database.database_url("tollgate_identity_system"),
        pool_size=20,
        max_overflow=0,
    )
    yield engine
    await engine.dispose()


@pytest.fixture
def directory(
    identity_engine: AsyncEngine, login_engine: AsyncEngine
) -> PostgresDirectory:
    """The directory adapter on the test database."""
    return PostgresDirectory(identity_engine, login_engine)


def person(email: str, subject: str | None = None) -> Identity:
    """A verified identity of the test issuer."""
    return Identity(ISSUER, subject or uuid.uuid4().hex, email, "Someone", None)


async def first_login(directory: PostgresDirectory, identity: Identity):
    """What the use case does for a new account."""
    plan = plan_organisation(identity, CONSUMER, provider_is_google=False)
    return await directory.register(identity, plan)


def fresh_domain() -> str:
    """A company domain no test used before."""
    return f"co-{uuid.uuid4().hex[:10]}.example"


async def test_ten_racing_first_logins_of_a_company_make_exactly_one_admin(
    directory: PostgresDirectory,
) -> None:
    """The unique domain decides: one organisation, one admin, nine members."""
    domain = fresh_domain()
    people = [person(f"user{n}@{domain}") for n in range(10)]
    users = await asyncio.gather(*(first_login(directory, p) for p in people))
    assert len({user.organisation_id for user in users}) == 1
    assert sorted(user.role for user in users) == [Role.ADMIN] + [Role.MEMBER] * 9
    assert len({user.id for user in users}) == 10


async def test_racing_first_logins_of_one_account_give_one_user_and_no_stray_org(
    directory: PostgresDirectory, login_engine: AsyncEngine
) -> None:
    """A double click on a personal account: the same user, one organisation."""
    name = f"Solo {uuid.uuid4().hex[:8]}"
    identity = Identity(ISSUER, uuid.uuid4().hex, "solo@gmail.com", name, None)
    users = await asyncio.gather(*(first_login(directory, identity) for _ in range(5)))
    assert len({user.id for user in users}) == 1
    async with login_engine.connect() as db:  # across organisations
        count = await db.scalar(
            sa.text("SELECT count(*) FROM organisations WHERE name = :name"),
            {"name": name},
        )
    assert count == 1


async def test_a_second_account_with_the_same_email_does_not_take_over_the_first(
    directory: PostgresDirectory,
) -> None:
    """Users are keyed on issuer and subject; the newcomer is a member."""
    email = f"ada@{fresh_domain()}"
    first = await first_login(directory, person(email, "subject-a"))
    second = await first_login(directory, person(email, "subject-b"))
    assert first.id != second.id
    assert first.organisation_id == second.organisation_id
    assert (first.role, second.role) == (Role.ADMIN, Role.MEMBER)
    found = await directory.user_by_subject(ISSUER, "subject-a")
    assert found is not None and found.id == first.id


async def test_the_same_subject_at_another_issuer_is_another_user(
    directory: PostgresDirectory,
) -> None:
    """A subject means something only together with its issuer."""
    subject, email = uuid.uuid4().hex, f"ada@{fresh_domain()}"
    here = await first_login(directory, person(email, subject))
    there = Identity("https://other-idp.example", subject, email, "Ada", None)
    elsewhere = await first_login(directory, there)
    assert here.id != elsewhere.id


async def test_strangers_at_a_mailbox_provider_get_organisations_of_their_own(
    directory: PostgresDirectory,
) -> None:
    """Two gmail.com users racing: two personal organisations, two admins."""
    users = await asyncio.gather(
        first_login(directory, person("one@gmail.com")),
        first_login(directory, person("two@gmail.com")),
    )
    assert users[0].organisation_id != users[1].organisation_id
    assert [user.role for user in users] == [Role.ADMIN, Role.ADMIN]


async def test_domains_whose_slugs_collide_get_separate_organisations(
    directory: PostgresDirectory,
) -> None:
    """``x-y.example`` and ``x.y-example`` both slug to ``x-y-example``."""
    stem = uuid.uuid4().hex[:8]
    first = await first_login(directory, person(f"a@{stem}-y.example"))
    second = await first_login(directory, person(f"b@{stem}.y-example"))
    assert first.organisation_id != second.organisation_id
    assert second.role == Role.ADMIN
    (_, first_org), (_, second_org) = (
        await directory.user(first.id, first.organisation_id),
        await directory.user(second.id, second.organisation_id),
    )
    assert first_org.slug == f"{stem}-y-example"
    assert second_org.slug.startswith(f"{stem}-y-example-")


def attempt(expires_in: timedelta = timedelta(minutes=10)) -> LoginAttempt:
    """A pending login with random hashes."""
    return LoginAttempt(
        state_hash=uuid.uuid4().hex,
        browser_hash=uuid.uuid4().hex,
        nonce="nonce",
        code_verifier="v" * 64,
        expires_at=datetime.now(UTC) + expires_in,
    )


async def test_an_attempt_is_taken_once_and_only_by_its_browser(
    directory: PostgresDirectory,
) -> None:
    """Another browser gets nothing and leaves it; the owner takes it once."""
    pending = attempt()
    await directory.save_attempt(pending)
    assert await directory.take_attempt(pending.state_hash, "another") is None
    taken = await directory.take_attempt(pending.state_hash, pending.browser_hash)
    assert taken == pending
    assert await directory.take_attempt(pending.state_hash, pending.browser_hash) is (
        None
    )


async def test_racing_callbacks_with_one_state_take_it_once(
    directory: PostgresDirectory,
) -> None:
    """Ten concurrent takes: exactly one attempt comes back."""
    pending = attempt()
    await directory.save_attempt(pending)
    taken = await asyncio.gather(
        *(
            directory.take_attempt(pending.state_hash, pending.browser_hash)
            for _ in range(10)
        )
    )
    assert [t for t in taken if t is not None] == [pending]


async def test_expired_attempts_are_swept_when_a_login_starts(
    directory: PostgresDirectory,
) -> None:
    """An attempt past its expiry is gone after the next save."""
    stale = attempt(timedelta(seconds=-1))
    await directory.save_attempt(stale)
    await directory.save_attempt(attempt())
    assert await directory.take_attempt(stale.state_hash, stale.browser_hash) is None


async def test_a_database_that_cannot_be_reached_is_unavailable() -> None:
    """503 service_unavailable rather than 500."""
    engine = create_async_engine(
        "postgresql+asyncpg://tollgate_identity@127.0.0.1:1/none",
        connect_args={"timeout": 2},
    )
    try:
        with pytest.raises(DependencyUnavailable):
            await PostgresDirectory(engine, engine).save_attempt(attempt())
    finally:
        await engine.dispose()


async def test_the_service_role_cannot_delete_users_or_organisations(
    identity_engine: AsyncEngine,
) -> None:
    """The running service may add and change people, never remove them."""
    for table in ("users", "organisations"):
        async with identity_engine.connect() as db:
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                await db.execute(sa.text(f"DELETE FROM {table} WHERE false"))


async def test_a_user_is_invisible_to_another_organisation(
    directory: PostgresDirectory, identity_engine: AsyncEngine
) -> None:
    """Row-level security: read as another organisation, the user does not exist."""
    user = await first_login(directory, person(f"a@{uuid.uuid4().hex[:8]}.example"))
    assert await directory.user(user.id, user.organisation_id) is not None
    assert await directory.user(user.id, uuid.uuid4()) is None
    async with identity_engine.connect() as db:
        unset = await db.execute(sa.text("SELECT count(*) FROM users"))
        assert unset.scalar_one() == 0
