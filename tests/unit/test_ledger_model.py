"""The ledger's posting rules, without a database."""

from __future__ import annotations

import uuid

import pytest

from tollgate_common.errors import InvalidRequest
from tollgate_ledger.domain.errors import (
    BalanceLimitExceeded,
    IdempotencyKeyReused,
    InsufficientCredits,
)
from tollgate_ledger.domain.model import (
    GRANT_CEILING,
    MAX_BALANCE,
    AccountKind,
    CreditsAccount,
    Kind,
    Movement,
    check_replay,
)

ORG = uuid.uuid4()


def movement(amount: int, reason: str = "why", reference: str = "r") -> Movement:
    """A movement for the test organisation."""
    return Movement(ORG, amount, reason, reference, uuid.uuid4(), "req")


def test_every_posting_sums_to_zero() -> None:
    """Grant, charge and refund each post two entries that cancel out."""
    account = CreditsAccount(ORG, 0)
    grant = account.grant(movement(100))
    charge = account.charge(movement(25))
    refund = account.refund(charge, movement(0))
    for transaction in (grant, charge, refund):
        assert sum(e.amount for e in transaction.entries) == 0
        assert len(transaction.entries) == 2
    assert account.balance == 100
    assert [t.signed_amount for t in (grant, charge, refund)] == [100, -25, 25]
    assert {e.account for e in charge.entries} == {
        AccountKind.CREDITS,
        AccountKind.USAGE,
    }


def test_a_charge_above_the_balance_is_refused_with_both_figures() -> None:
    """Insufficient credits carries the balance and the price."""
    account = CreditsAccount(ORG, 20)
    with pytest.raises(InsufficientCredits) as refused:
        account.charge(movement(25))
    assert refused.value.context == {"balance": 20, "required": 25}
    assert account.balance == 20


@pytest.mark.parametrize("amount", [0, -1])
def test_credits_only_move_in_positive_amounts(amount: int) -> None:
    """A grant or charge of nothing, or less, is refused."""
    with pytest.raises(InvalidRequest, match="amount"):
        CreditsAccount(ORG, 100).grant(movement(amount))
    with pytest.raises(InvalidRequest, match="amount"):
        CreditsAccount(ORG, 100).charge(movement(amount))


def test_grants_stop_at_the_ceiling_leaving_room_for_refunds() -> None:
    """A grant past the ceiling is refused; a refund at the ceiling still lands."""
    with pytest.raises(BalanceLimitExceeded):
        CreditsAccount(ORG, GRANT_CEILING - 5).grant(movement(6))
    account = CreditsAccount(ORG, GRANT_CEILING)
    charge = account.charge(movement(10))
    account.grant(movement(10))
    refund = account.refund(charge, movement(0))
    assert account.balance == GRANT_CEILING + 10 < MAX_BALANCE
    assert refund.amount == 10


def test_a_replay_must_be_the_same_request() -> None:
    """Same reference, other amount or kind: refused."""
    first = CreditsAccount(ORG, 0).grant(movement(10))
    assert check_replay(first, movement(10), Kind.GRANT) is first
    with pytest.raises(IdempotencyKeyReused):
        check_replay(first, movement(11), Kind.GRANT)
    with pytest.raises(IdempotencyKeyReused):
        check_replay(first, movement(10), Kind.CHARGE)


def test_only_a_charge_can_be_refunded() -> None:
    """Refunding a grant is refused."""
    account = CreditsAccount(ORG, 0)
    grant = account.grant(movement(10))
    with pytest.raises(InvalidRequest):
        account.refund(grant, movement(0))
