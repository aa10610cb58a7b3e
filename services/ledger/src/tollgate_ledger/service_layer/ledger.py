"""The ledger's use cases. Each runs in one database transaction.

A money movement locks the organisation's credits account first and only then looks
up its reference, so two calls with one reference are serialised by the lock and the
second sees the first; the unique (organisation, reference) constraint is the
guarantee behind that. Only one account row is ever locked, so there is no lock order
to get wrong and no deadlock between grants and charges.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tollgate_ledger.domain.errors import ChargeNotFound, InsufficientCredits
from tollgate_ledger.domain.model import (
    Kind,
    Movement,
    Transaction,
    check_replay,
)
from tollgate_ledger.service_layer.ports import UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Posted:
    """The outcome of a money movement."""

    transaction: Transaction
    replayed: bool


class Ledger:
    """Grants, charges, refunds and balances."""

    def __init__(self, unit_of_work: Callable[[uuid.UUID], UnitOfWork]) -> None:
        self._uow = unit_of_work

    async def grant(self, movement: Movement) -> Posted:
        """Add credits to an organisation, once per reference."""
        async with self._uow(movement.organisation_id) as uow:
            account = await uow.lock_account(movement.organisation_id, create=True)
            assert account is not None
            existing = await uow.by_reference(
                movement.organisation_id, movement.reference
            )
            if existing is not None:
                return Posted(check_replay(existing, movement, Kind.GRANT), True)
            transaction = account.grant(movement)
            transaction = await uow.save(transaction)
            await uow.commit()
        _log_posted(transaction)
        return Posted(transaction, False)

    async def charge(self, movement: Movement) -> Posted:
        """Take credits from an organisation, once per reference, never overdrawing."""
        async with self._uow(movement.organisation_id) as uow:
            account = await uow.lock_account(movement.organisation_id, create=False)
            if account is None:
                raise InsufficientCredits(
                    "The organisation does not have enough credits.",
                    balance=0,
                    required=movement.amount,
                )
            existing = await uow.by_reference(
                movement.organisation_id, movement.reference
            )
            if existing is not None:
                return Posted(check_replay(existing, movement, Kind.CHARGE), True)
            transaction = account.charge(movement)
            transaction = await uow.save(transaction)
            await uow.commit()
        _log_posted(transaction)
        return Posted(transaction, False)

    async def refund(self, movement: Movement, charge_id: uuid.UUID) -> Posted:
        """Reverse a charge in full; a second refund returns the first."""
        async with self._uow(movement.organisation_id) as uow:
            account = await uow.lock_account(movement.organisation_id, create=False)
            charge = await uow.by_id(movement.organisation_id, charge_id)
            if account is None or charge is None or charge.kind is not Kind.CHARGE:
                raise ChargeNotFound(f"No charge with id {charge_id}.")
            earlier = await uow.refund_of(movement.organisation_id, charge_id)
            if earlier is not None:
                return Posted(earlier, True)
            transaction = account.refund(charge, movement)
            transaction = await uow.save(transaction)
            await uow.commit()
        _log_posted(transaction)
        return Posted(transaction, False)

    async def balance(
        self, organisation_id: uuid.UUID, recent: int = 10
    ) -> tuple[int, Sequence[Transaction]]:
        """The balance summed from the entries, and the newest transactions."""
        async with self._uow(organisation_id) as uow:
            return await uow.balance(organisation_id), await uow.newest(
                organisation_id, recent
            )

    async def transactions(
        self,
        organisation_id: uuid.UUID,
        limit: int,
        before: tuple[datetime, uuid.UUID] | None,
    ) -> Sequence[Transaction]:
        """A page of transactions, newest first."""
        async with self._uow(organisation_id) as uow:
            return await uow.newest(organisation_id, limit, before)


def _log_posted(transaction: Transaction) -> None:
    logger.info(
        "%s posted",
        transaction.kind,
        extra={
            "fields": {
                "transaction_id": str(transaction.id),
                "amount": transaction.signed_amount,
                "balance": transaction.balance_after,
            }
        },
    )
