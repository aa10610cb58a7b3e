"""Everything that can go wrong in the ledger, as the domain sees it."""

from tollgate_common.errors import DomainError


class LedgerError(DomainError):
    """Base of the ledger's own errors."""


class InsufficientCredits(LedgerError):
    """The organisation's balance is below the amount to charge."""


class ChargeNotFound(LedgerError):
    """No charge with that id in that organisation."""


class IdempotencyKeyReused(LedgerError):
    """A reference was used before for a different request."""


class BalanceLimitExceeded(LedgerError):
    """The balance would no longer fit the public API's 32-bit integers."""
