"""What the use cases need from storage, so they can run on Postgres or a fake."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, Self

from tollgate_ledger.domain.model import CreditsAccount, Transaction


class UnitOfWork(Protocol):
    """One database transaction: everything in it commits together or not at all."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def commit(self) -> None:
        """Make the work durable."""

    async def lock_account(
        self, organisation_id: uuid.UUID, create: bool
    ) -> CreditsAccount | None:
        """The credits account, locked until the end of the unit (FOR UPDATE)."""

    async def save(self, transaction: Transaction) -> Transaction:
        """Record a transaction, its entries and the new balance; return it dated."""

    async def by_reference(
        self, organisation_id: uuid.UUID, reference: str
    ) -> Transaction | None:
        """The transaction recorded under a reference, if any."""

    async def by_id(
        self, organisation_id: uuid.UUID, transaction_id: uuid.UUID
    ) -> Transaction | None:
        """A transaction of an organisation."""

    async def refund_of(
        self, organisation_id: uuid.UUID, charge_id: uuid.UUID
    ) -> Transaction | None:
        """The refund that reversed a charge, if there is one."""

    async def balance(self, organisation_id: uuid.UUID) -> int:
        """The organisation's balance, summed from its entries."""

    async def newest(
        self,
        organisation_id: uuid.UUID,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None = None,
    ) -> Sequence[Transaction]:
        """Transactions newest first, optionally only those older than a cursor."""
