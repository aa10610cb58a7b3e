"""The ledger against the real Postgres: concurrency, idempotency, refunds, privileges.

Every test ends by reconciling the whole ledger.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_common.errors import InvalidRequest
from tollgate_ledger.adapters.postgres import PostgresUnitOfWork
from tollgate_ledger.adapters.reconciliation import ReconciliationBlind, reconcile
from tollgate_ledger.domain.errors import (
    ChargeNotFound,
    IdempotencyKeyReused,
    InsufficientCredits,
)
from tollgate_ledger.domain.model import GRANT_CEILING, Movement
from tollgate_ledger.service_layer.ledger import Ledger


@pytest.fixture
async def ledger(
    ledger_engine: AsyncEngine, ledger_system_engine: AsyncEngine
) -> AsyncIterator[Ledger]:
    """A ledger on the test database, reconciled after the test."""
    yield Ledger(functools.partial(PostgresUnitOfWork, ledger_engine))
    report = await reconcile(ledger_system_engine)
    assert report.ok, report.violations


ACT_FOR = sa.text("SELECT set_config('tollgate.organisation_id', :org, true)")


def movement(org: uuid.UUID, amount: int, reference: str | None = None) -> Movement:
    """A movement of ``amount`` with a fresh reference unless one is given."""
    return Movement(
        organisation_id=org,
        amount=amount,
        reason="test",
        reference=reference or uuid.uuid4().hex,
        user_id=uuid.uuid4(),
        request_id="test",
    )


async def test_fifty_concurrent_charges_of_25_on_500_give_exactly_20(
    ledger: Ledger,
) -> None:
    """50 racing charges of 25 against 500: 20 succeed, 30 are refused, balance 0."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, 500))

    results = await asyncio.gather(
        *(ledger.charge(movement(org, 25)) for _ in range(50)),
        return_exceptions=True,
    )

    assert sum(not isinstance(r, Exception) for r in results) == 20
    assert sum(isinstance(r, InsufficientCredits) for r in results) == 30
    balance, _ = await ledger.balance(org)
    assert balance == 0


async def test_a_hundred_concurrent_calls_with_one_reference_charge_once(
    ledger: Ledger,
) -> None:
    """The same reference from 100 racing calls moves credits once."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, 1000))

    results = await asyncio.gather(
        *(ledger.charge(movement(org, 25, "same-ref")) for _ in range(100))
    )

    assert len({r.transaction.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    balance, _ = await ledger.balance(org)
    assert balance == 975


async def test_interleaved_grants_and_charges_never_deadlock(ledger: Ledger) -> None:
    """200 interleaved grants and charges on one organisation all finish cleanly."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, 100))
    calls = [
        ledger.grant(movement(org, 10)) if i % 2 else ledger.charge(movement(org, 10))
        for i in range(200)
    ]

    results = await asyncio.gather(*calls, return_exceptions=True)

    unexpected = [
        r
        for r in results
        if isinstance(r, Exception) and not isinstance(r, InsufficientCredits)
    ]
    assert unexpected == []
    charged = sum(
        1 for i, r in enumerate(results) if i % 2 == 0 and not isinstance(r, Exception)
    )
    balance, _ = await ledger.balance(org)
    assert balance == 100 + 100 * 10 - charged * 10


async def test_a_reference_reused_with_another_amount_is_refused(
    ledger: Ledger,
) -> None:
    """A reference names one request: the same one with another amount is refused."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, 100, "grant-1"))

    with pytest.raises(IdempotencyKeyReused):
        await ledger.grant(movement(org, 200, "grant-1"))

    balance, _ = await ledger.balance(org)
    assert balance == 100


async def test_refunds_of_unknown_foreign_or_refunded_charges_move_nothing(
    ledger: Ledger,
) -> None:
    """Only a charge of the same organisation is refunded, and only once."""
    org, other = uuid.uuid4(), uuid.uuid4()
    await ledger.grant(movement(org, 100))
    await ledger.grant(movement(other, 100))
    charge = (await ledger.charge(movement(org, 25))).transaction

    with pytest.raises(ChargeNotFound):
        await ledger.refund(movement(org, 0), uuid.uuid4())
    with pytest.raises(ChargeNotFound):
        await ledger.refund(movement(other, 0), charge.id)
    first = await ledger.refund(movement(org, 0), charge.id)
    again = await asyncio.gather(
        *(ledger.refund(movement(org, 0), charge.id) for _ in range(10))
    )

    assert not first.replayed and first.transaction.amount == 25
    assert all(r.replayed and r.transaction.id == first.transaction.id for r in again)
    assert (await ledger.balance(org))[0] == 100
    assert (await ledger.balance(other))[0] == 100


async def test_a_grant_of_nothing_records_nothing(ledger: Ledger) -> None:
    """A zero or negative grant is refused before anything is written."""
    org = uuid.uuid4()
    for amount in (0, -5):
        with pytest.raises(InvalidRequest):
            await ledger.grant(movement(org, amount))
    balance, recent = await ledger.balance(org)
    assert (balance, list(recent)) == (0, [])


async def test_balance_lists_transactions_newest_first(ledger: Ledger) -> None:
    """The recent list is newest first with signed amounts."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, 100))
    charge = (await ledger.charge(movement(org, 25))).transaction
    await ledger.refund(movement(org, 0), charge.id)

    balance, recent = await ledger.balance(org)

    assert balance == 100
    assert [t.signed_amount for t in recent] == [25, -25, 100]


async def test_entries_and_transactions_cannot_be_changed_by_the_ledger_role(
    ledger: Ledger, ledger_engine: AsyncEngine
) -> None:
    """The running ledger's role may insert entries but never update or delete them."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, 100))
    for statement in (
        "UPDATE entries SET amount = amount * 2",
        "DELETE FROM entries",
        "UPDATE transactions SET amount = 1",
        "DELETE FROM transactions",
    ):
        async with ledger_engine.connect() as db:
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                await db.execute(sa.text(statement))


async def test_the_ledger_role_cannot_read_other_services_schemas(
    ledger_engine: AsyncEngine,
) -> None:
    """Each service's role is confined to its own schema."""
    for table in ("identity.users", "jobs.jobs"):
        async with ledger_engine.connect() as db:
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                await db.execute(sa.text(f"SELECT * FROM {table}"))


async def test_an_unbalanced_transaction_is_refused_by_the_database(
    ledger: Ledger, ledger_engine: AsyncEngine
) -> None:
    """Postgres itself rejects entries that do not sum to zero, at commit."""
    org = uuid.uuid4()
    posted = await ledger.grant(movement(org, 100))
    txn = uuid.uuid4()
    async with ledger_engine.connect() as db:
        await db.execute(ACT_FOR, {"org": str(org)})
        await db.execute(
            sa.text(
                "INSERT INTO transactions (organisation_id, id, kind, amount, reason, "
                "reference, fingerprint, request_id, balance_after) VALUES "
                "(:org, :id, 'grant', 5, 'x', :ref, 'x', 'x', 105)"
            ),
            {"org": org, "id": txn, "ref": uuid.uuid4().hex},
        )
        await db.execute(
            sa.text(
                "INSERT INTO entries VALUES (:org, :id, 'credits', 5), "
                "(:org, :id, 'grants', -4)"
            ),
            {"org": org, "id": txn},
        )
        with pytest.raises(sa.exc.IntegrityError, match="do not sum to zero"):
            await db.commit()
    assert (await ledger.balance(org))[0] == posted.transaction.balance_after


async def test_row_level_security_hides_other_organisations_rows(
    ledger: Ledger, ledger_engine: AsyncEngine
) -> None:
    """Without the organisation set, or with another, the ledger role sees nothing."""
    org, other = uuid.uuid4(), uuid.uuid4()
    await ledger.grant(movement(org, 100))
    count = sa.text(
        "SELECT (SELECT count(*) FROM accounts WHERE organisation_id = :org) + "
        "(SELECT count(*) FROM transactions WHERE organisation_id = :org) + "
        "(SELECT count(*) FROM entries WHERE organisation_id = :org)"
    )

    async def visible(acting_for: uuid.UUID | None) -> int:
        async with ledger_engine.begin() as db:
            if acting_for is not None:
                await db.execute(ACT_FOR, {"org": str(acting_for)})
            return int((await db.execute(count, {"org": org})).scalar_one())

    assert await visible(None) == 0
    assert await visible(other) == 0
    assert await visible(org) == 3 + 1 + 2


async def test_row_level_security_refuses_writes_for_another_organisation(
    ledger_engine: AsyncEngine,
) -> None:
    """Acting for one organisation, a row of another cannot be written."""
    async with ledger_engine.begin() as db:
        await db.execute(ACT_FOR, {"org": str(uuid.uuid4())})
        with pytest.raises(sa.exc.ProgrammingError, match="row-level security"):
            await db.execute(
                sa.text(
                    "INSERT INTO accounts (organisation_id, kind) VALUES (:o, 'usage')"
                ),
                {"o": uuid.uuid4()},
            )


async def test_reconciliation_refuses_a_role_confined_by_row_level_security(
    ledger_engine: AsyncEngine,
) -> None:
    """Through the policies it would see an empty, trivially sound ledger."""
    with pytest.raises(ReconciliationBlind):
        await reconcile(ledger_engine)


async def test_a_refund_is_never_refused_even_at_the_grant_ceiling(
    ledger: Ledger,
) -> None:
    """A grant that fills the room a pending charge freed cannot block its refund."""
    org = uuid.uuid4()
    await ledger.grant(movement(org, GRANT_CEILING))
    charge = (await ledger.charge(movement(org, 10))).transaction
    await ledger.grant(movement(org, 10))

    refund = await ledger.refund(movement(org, 0), charge.id)

    assert not refund.replayed
    assert (await ledger.balance(org))[0] == GRANT_CEILING + 10
