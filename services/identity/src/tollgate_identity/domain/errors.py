"""Everything that can go wrong in identity, as the domain sees it."""

from tollgate_common.errors import DomainError


class IdentityError(DomainError):
    """Base of the identity service's own errors."""


class LoginFailed(IdentityError):
    """The login callback could not be completed; the message says why."""


class UserNotFound(IdentityError):
    """The token names a user that does not exist."""
