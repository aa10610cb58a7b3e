"""The one table that says how each ledger error looks from outside."""

from collections.abc import Mapping

import grpc

from tollgate_common.errors import DomainError
from tollgate_common.grpc_errors import PublicError
from tollgate_ledger.domain import errors

ERRORS: Mapping[type[DomainError], PublicError] = {
    errors.InsufficientCredits: PublicError(
        grpc.StatusCode.FAILED_PRECONDITION, 402, "insufficient_credits"
    ),
    errors.ChargeNotFound: PublicError(
        grpc.StatusCode.NOT_FOUND, 404, "charge_not_found"
    ),
    errors.IdempotencyKeyReused: PublicError(
        grpc.StatusCode.INVALID_ARGUMENT, 422, "idempotency_key_reused"
    ),
    errors.BalanceLimitExceeded: PublicError(
        grpc.StatusCode.FAILED_PRECONDITION, 422, "validation_error"
    ),
}
