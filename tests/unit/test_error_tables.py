"""Every domain error of every service has its public form in that service's table."""

from __future__ import annotations

import pytest

from tollgate_common import errors as common_errors
from tollgate_common.grpc_errors import COMMON_ERRORS, INTERNAL, lookup
from tollgate_identity.domain import errors as identity_errors
from tollgate_identity.entrypoints.errors import ERRORS as IDENTITY
from tollgate_jobs.domain import errors as jobs_errors
from tollgate_jobs.entrypoints.errors import ERRORS as JOBS
from tollgate_ledger.domain import errors as ledger_errors
from tollgate_ledger.entrypoints.errors import ERRORS as LEDGER


def subclasses(base: type) -> set[type]:
    """Every class below ``base``."""
    found = set()
    for cls in base.__subclasses__():
        found |= {cls, *subclasses(cls)}
    return found


@pytest.mark.parametrize(
    ("base", "table"),
    [
        (identity_errors.IdentityError, IDENTITY),
        (ledger_errors.LedgerError, LEDGER),
        (jobs_errors.JobsError, JOBS),
    ],
)
def test_every_domain_error_is_mapped(base: type, table: dict) -> None:
    """No error of a service falls through to internal_error."""
    assert subclasses(base) <= set(table)


def test_the_shared_errors_are_mapped() -> None:
    """Authentication, permission, validation and availability have public forms."""
    shared = {
        cls
        for cls in subclasses(common_errors.DomainError)
        if cls.__module__ == common_errors.__name__
    }
    assert shared <= set(COMMON_ERRORS)


def test_an_unknown_exception_is_an_internal_error() -> None:
    """Anything unmapped is a 500."""
    assert lookup(ValueError("x"), COMMON_ERRORS) is INTERNAL


@pytest.mark.parametrize(
    ("table", "error", "status"),
    [
        (LEDGER, ledger_errors.InsufficientCredits, 402),
        (JOBS, jobs_errors.InsufficientCredits, 402),
        (JOBS, jobs_errors.IdempotencyConflict, 409),
        (JOBS, jobs_errors.IdempotencyKeyReused, 422),
        (JOBS, jobs_errors.JobNotFound, 404),
        (IDENTITY, identity_errors.LoginFailed, 400),
    ],
)
def test_public_statuses_follow_the_api_contract(table, error, status: int) -> None:
    """The statuses API.md documents."""
    assert lookup(error("x"), {**COMMON_ERRORS, **table}).http_status == status
