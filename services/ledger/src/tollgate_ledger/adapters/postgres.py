"""The ledger's tables in Postgres, behind the ``UnitOfWork`` port."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollgate_ledger.domain.model import (
    AccountKind,
    CreditsAccount,
    Kind,
    Transaction,
)

_COLUMNS = (
    "id, organisation_id, kind, amount, reason, reference, fingerprint, user_id, "
    "request_id, balance_after, reverses_id, created_at"
)

_CREATE_ACCOUNTS = sa.text(
    """
    INSERT INTO accounts (organisation_id, kind)
    SELECT :org, kind FROM unnest(CAST(:kinds AS text[])) AS kind
    ON CONFLICT DO NOTHING
    """
)
_LOCK = sa.text(
    "SELECT balance FROM accounts "
    "WHERE organisation_id = :org AND kind = 'credits' FOR UPDATE"
)
# A transaction, its entries and the new cached balance in one statement: one round
# trip while the account's row lock is held. The foreign keys and the deferred
# sum-to-zero check see all three writes.
_RECORD = sa.text(
    f"""
    WITH recorded AS (
        INSERT INTO transactions ({_COLUMNS})
        VALUES (:id, :organisation_id, :kind, :amount, :reason, :reference,
                :fingerprint, :user_id, :request_id, :balance_after, :reverses_id,
                clock_timestamp())
        RETURNING created_at
    ), posted AS (
        INSERT INTO entries (organisation_id, transaction_id, account_kind, amount)
        SELECT :organisation_id, :id, kind, amount
        FROM unnest(CAST(:kinds AS text[]), CAST(:amounts AS bigint[]))
            AS e(kind, amount)
    ), balanced AS (
        UPDATE accounts SET balance = :balance_after
        WHERE organisation_id = :organisation_id AND kind = 'credits'
    )
    SELECT created_at FROM recorded
    """
)
_BY_REFERENCE = sa.text(
    f"SELECT {_COLUMNS} FROM transactions "
    "WHERE organisation_id = :org AND reference = :reference"
)
_BY_ID = sa.text(
    f"SELECT {_COLUMNS} FROM transactions WHERE organisation_id = :org AND id = :id"
)
_REFUND_OF = sa.text(
    f"SELECT {_COLUMNS} FROM transactions "
    "WHERE organisation_id = :org AND reverses_id = :id"
)
_BALANCE = sa.text(
    "SELECT coalesce(sum(amount), 0) FROM entries "
    "WHERE organisation_id = :org AND account_kind = 'credits'"
)
_NEWEST = sa.text(
    f"SELECT {_COLUMNS} FROM transactions WHERE organisation_id = :org "
    "AND (CAST(:before_at AS timestamptz) IS NULL "
    "     OR (created_at, id) < (:before_at, CAST(:before_id AS uuid))) "
    "ORDER BY created_at DESC, id DESC LIMIT :limit"
)


_ACT_FOR = sa.text("SELECT set_config('tollgate.organisation_id', :org, true)")


class PostgresUnitOfWork:
    """A ledger transaction for one organisation, on one pooled connection.

    Row-level security confines the transaction to that organisation's rows.
    """

    def __init__(self, engine: AsyncEngine, organisation_id: uuid.UUID) -> None:
        self._engine = engine
        self._organisation_id = organisation_id
        self._connection: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        self._connection = await self._engine.connect()
        await self._connection.begin()
        await self._connection.execute(_ACT_FOR, {"org": str(self._organisation_id)})
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._connection is not None
        try:
            await self._connection.rollback()
        finally:
            await self._connection.close()
            self._connection = None

    @property
    def _db(self) -> AsyncConnection:
        assert self._connection is not None, "use the unit of work in `async with`"
        return self._connection

    async def commit(self) -> None:
        """Commit; the deferred sum-to-zero check runs here."""
        await self._db.commit()

    async def lock_account(
        self, organisation_id: uuid.UUID, create: bool
    ) -> CreditsAccount | None:
        """Lock the credits row, creating the organisation's accounts if asked."""
        if create:
            await self._db.execute(
                _CREATE_ACCOUNTS,
                {"org": organisation_id, "kinds": [k.value for k in AccountKind]},
            )
        balance = (await self._db.execute(_LOCK, {"org": organisation_id})).scalar()
        if balance is None:
            return None
        return CreditsAccount(organisation_id, int(balance))

    async def save(self, transaction: Transaction) -> Transaction:
        """Insert the transaction and its entries and write the cached balance."""
        row: dict[str, Any] = {
            "id": transaction.id,
            "organisation_id": transaction.organisation_id,
            "kind": transaction.kind.value,
            "amount": transaction.amount,
            "reason": transaction.reason,
            "reference": transaction.reference,
            "fingerprint": transaction.fingerprint,
            "user_id": transaction.user_id,
            "request_id": transaction.request_id,
            "balance_after": transaction.balance_after,
            "reverses_id": transaction.reverses_id,
        }
        row["kinds"] = [e.account.value for e in transaction.entries]
        row["amounts"] = [e.amount for e in transaction.entries]
        created_at = (await self._db.execute(_RECORD, row)).scalar_one()
        return dataclasses.replace(transaction, created_at=created_at)

    async def by_reference(
        self, organisation_id: uuid.UUID, reference: str
    ) -> Transaction | None:
        """The transaction recorded under a reference."""
        return await self._one(_BY_REFERENCE, org=organisation_id, reference=reference)

    async def by_id(
        self, organisation_id: uuid.UUID, transaction_id: uuid.UUID
    ) -> Transaction | None:
        """A transaction of an organisation."""
        return await self._one(_BY_ID, org=organisation_id, id=transaction_id)

    async def refund_of(
        self, organisation_id: uuid.UUID, charge_id: uuid.UUID
    ) -> Transaction | None:
        """The refund of a charge."""
        return await self._one(_REFUND_OF, org=organisation_id, id=charge_id)

    async def balance(self, organisation_id: uuid.UUID) -> int:
        """Sum of the credits account's entries."""
        result = await self._db.execute(_BALANCE, {"org": organisation_id})
        return int(result.scalar_one())

    async def newest(
        self,
        organisation_id: uuid.UUID,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> Sequence[Transaction]:
        """Transactions newest first."""
        result = await self._db.execute(
            _NEWEST,
            {
                "org": organisation_id,
                "limit": limit,
                "before_at": before[0] if before else None,
                "before_id": before[1] if before else None,
            },
        )
        return [_transaction(row) for row in result.mappings()]

    async def _one(self, query: sa.TextClause, **params: Any) -> Transaction | None:
        row = (await self._db.execute(query, params)).mappings().first()
        return _transaction(row) if row else None


def _transaction(row: Any) -> Transaction:
    return Transaction(
        id=row["id"],
        organisation_id=row["organisation_id"],
        kind=Kind(row["kind"]),
        amount=row["amount"],
        reason=row["reason"],
        reference=row["reference"],
        fingerprint=row["fingerprint"],
        user_id=row["user_id"],
        request_id=row["request_id"],
        balance_after=row["balance_after"],
        reverses_id=row["reverses_id"],
        created_at=row["created_at"],
    )
