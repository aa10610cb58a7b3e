"""The one table that says how each jobs error looks from outside."""

from collections.abc import Mapping

import grpc

from tollgate_common.errors import DomainError
from tollgate_common.grpc_errors import PublicError
from tollgate_jobs.domain import errors

ERRORS: Mapping[type[DomainError], PublicError] = {
    errors.JobNotFound: PublicError(grpc.StatusCode.NOT_FOUND, 404, "job_not_found"),
    errors.InsufficientCredits: PublicError(
        grpc.StatusCode.FAILED_PRECONDITION, 402, "insufficient_credits"
    ),
    errors.IdempotencyKeyReused: PublicError(
        grpc.StatusCode.INVALID_ARGUMENT, 422, "idempotency_key_reused"
    ),
    errors.IdempotencyConflict: PublicError(
        grpc.StatusCode.ABORTED, 409, "idempotency_conflict"
    ),
}
