"""The ledger's rules: what each kind of transaction posts, and when it may.

Each organisation has three accounts: ``credits`` (what it can spend; the only one
with a balance that must stay at or above zero), ``grants`` (where granted credits
come from) and ``usage`` (where spent credits go). Every transaction posts to two of
them with amounts that sum to zero, so the credits balance is always the sum of its
entries and the three accounts together always sum to zero.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tollgate_common.errors import InvalidRequest
from tollgate_ledger.domain.errors import (
    BalanceLimitExceeded,
    IdempotencyKeyReused,
    InsufficientCredits,
)

# Public amounts travel as int32: proto3's JSON mapping would quote an int64.
# Grants stop at GRANT_CEILING so that refunds, which are never refused, have a
# billion credits of room above it before a balance could outgrow an int32.
# (The limits of a request, such as a grant's size, are declared in the protos.)
MAX_BALANCE = 2**31 - 1
GRANT_CEILING = 1_000_000_000


class Kind(StrEnum):
    """What a transaction does."""

    GRANT = "grant"
    CHARGE = "charge"
    REFUND = "refund"


class AccountKind(StrEnum):
    """The three accounts of every organisation."""

    CREDITS = "credits"
    GRANTS = "grants"
    USAGE = "usage"


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a transaction."""

    account: AccountKind
    amount: int


@dataclass(frozen=True, slots=True)
class Transaction:
    """A recorded movement of credits with its audit trail."""

    id: uuid.UUID
    organisation_id: uuid.UUID
    kind: Kind
    amount: int
    reason: str
    reference: str
    fingerprint: str
    user_id: uuid.UUID | None
    request_id: str
    balance_after: int
    reverses_id: uuid.UUID | None = None
    created_at: datetime | None = None
    entries: tuple[Entry, ...] = field(default=())

    @property
    def signed_amount(self) -> int:
        """The amount from the organisation's side: grant +, charge -, refund +."""
        return -self.amount if self.kind is Kind.CHARGE else self.amount


@dataclass(frozen=True, slots=True)
class Movement:
    """A request to move credits, before it is checked against the account."""

    organisation_id: uuid.UUID
    amount: int
    reason: str
    reference: str
    user_id: uuid.UUID | None
    request_id: str

    @property
    def fingerprint(self) -> str:
        """What makes two requests with one reference the same request."""
        digest = hashlib.sha256(f"{self.amount}\x00{self.reason}".encode())
        return digest.hexdigest()


@dataclass(slots=True)
class CreditsAccount:
    """An organisation's spendable balance, locked for the length of a transaction."""

    organisation_id: uuid.UUID
    balance: int

    def grant(self, movement: Movement) -> Transaction:
        """Add credits from the grants account."""
        _check_positive(movement)
        if self.balance + movement.amount > GRANT_CEILING:
            raise BalanceLimitExceeded(
                "The grant would take the balance past its limit.",
                balance=self.balance,
                limit=GRANT_CEILING,
            )
        return self._post(Kind.GRANT, movement, AccountKind.GRANTS, +movement.amount)

    def charge(self, movement: Movement) -> Transaction:
        """Take credits into the usage account, never below zero."""
        _check_positive(movement)
        if self.balance < movement.amount:
            raise InsufficientCredits(
                "The organisation does not have enough credits.",
                balance=self.balance,
                required=movement.amount,
            )
        return self._post(Kind.CHARGE, movement, AccountKind.USAGE, -movement.amount)

    def refund(self, charge: Transaction, movement: Movement) -> Transaction:
        """Return exactly what a charge took, from the usage account; never refused."""
        if charge.kind is not Kind.CHARGE:
            raise InvalidRequest("charge_transaction_id: not a charge")
        return self._post(
            Kind.REFUND, movement, AccountKind.USAGE, +charge.amount, charge.id
        )

    def _post(
        self,
        kind: Kind,
        movement: Movement,
        counterpart: AccountKind,
        change: int,
        reverses_id: uuid.UUID | None = None,
    ) -> Transaction:
        self.balance += change
        return Transaction(
            id=uuid.uuid4(),
            organisation_id=self.organisation_id,
            kind=kind,
            amount=abs(change),
            reason=movement.reason,
            reference=movement.reference,
            fingerprint=movement.fingerprint,
            user_id=movement.user_id,
            request_id=movement.request_id,
            balance_after=self.balance,
            reverses_id=reverses_id,
            entries=(
                Entry(AccountKind.CREDITS, change),
                Entry(counterpart, -change),
            ),
        )


def check_replay(existing: Transaction, movement: Movement, kind: Kind) -> Transaction:
    """The first transaction of a reference, if this request is the same one."""
    if existing.kind is not kind or existing.fingerprint != movement.fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with a different request."
        )
    return existing


def _check_positive(movement: Movement) -> None:
    # Credits only ever move in positive amounts; the sign comes from the kind.
    if movement.amount < 1:
        raise InvalidRequest("amount: must be at least 1")
