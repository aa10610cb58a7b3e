"""Everything that can go wrong in the jobs service, as the domain sees it."""

from tollgate_common.errors import DomainError


class JobsError(DomainError):
    """Base of the jobs service's own errors."""


class JobNotFound(JobsError):
    """No job with that id in the caller's organisation."""


class InsufficientCredits(JobsError):
    """The ledger refused the charge: the balance is below the price."""


class IdempotencyKeyReused(JobsError):
    """The key was used before with another body or endpoint."""


class IdempotencyConflict(JobsError):
    """A request with the same key is still being processed."""


# Errors a replay may raise again; they are stored by class name.
REPLAYABLE: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (InsufficientCredits, JobNotFound)
}
