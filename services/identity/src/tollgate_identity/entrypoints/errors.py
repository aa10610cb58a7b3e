"""The one table that says how each identity error looks from outside."""

from collections.abc import Mapping

import grpc

from tollgate_common.errors import DomainError
from tollgate_common.grpc_errors import PublicError
from tollgate_identity.domain import errors

ERRORS: Mapping[type[DomainError], PublicError] = {
    errors.LoginFailed: PublicError(
        grpc.StatusCode.INVALID_ARGUMENT, 400, "google_auth_failed"
    ),
    # A valid token whose user is gone is no longer a way in.
    errors.UserNotFound: PublicError(
        grpc.StatusCode.UNAUTHENTICATED, 401, "authentication_required"
    ),
}
