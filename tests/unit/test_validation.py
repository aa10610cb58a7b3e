"""The request rules declared in the protos, as protovalidate applies them."""

from __future__ import annotations

import pytest

from tollgate.jobs.v1 import jobs_service_pb2 as jobs
from tollgate.ledger.v1 import ledger_service_pb2 as ledger
from tollgate_common.errors import InvalidRequest
from tollgate_common.validation import validate

GRANT = "/tollgate.ledger.v1.LedgerService/Grant"
ANALYSE = "/tollgate.jobs.v1.JobsService/Analyse"
CHARGE = "/tollgate.ledger.v1.LedgerService/Charge"


@pytest.mark.parametrize(
    ("amount", "reason", "field"),
    [
        (0, "ok", "amount"),
        (-5, "ok", "amount"),
        (1_000_001, "ok", "amount"),
        (10, "", "reason"),
        (10, "x" * 501, "reason"),
    ],
)
def test_grants_outside_their_rules_name_the_field(
    amount: int, reason: str, field: str
) -> None:
    """Amount 1 to 1,000,000 and reason 1 to 500 characters, named in the message."""
    with pytest.raises(InvalidRequest, match=rf"^body → {field}: "):
        validate(GRANT, ledger.GrantRequest(amount=amount, reason=reason))


def test_a_valid_grant_passes() -> None:
    """The edges of the ranges are allowed."""
    validate(GRANT, ledger.GrantRequest(amount=1_000_000, reason="x" * 500))
    validate(GRANT, ledger.GrantRequest(amount=1, reason="x"))


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("x" * 9, False),
        ("x" * 10, True),
        ("x" * 2000, True),
        ("x" * 2001, False),
        ("😀" * 10, True),
        ("é" * 2000, True),
    ],
)
def test_text_length_counts_code_points(text: str, valid: bool) -> None:
    """10 to 2000 characters, whatever their size in bytes."""
    request = jobs.AnalyseRequest(text=text)
    if valid:
        validate(ANALYSE, request)
    else:
        with pytest.raises(InvalidRequest, match=r"^body → text: "):
            validate(ANALYSE, request)


def test_internal_requests_have_no_body_prefix() -> None:
    """Fields of an RPC without an HTTP body are named bare."""
    with pytest.raises(InvalidRequest, match=r"^organisation_id: "):
        validate(
            CHARGE,
            ledger.ChargeRequest(
                organisation_id="nope",
                user_id="7f751a8a-c2d9-4a7c-a508-a96c1eef89af",
                amount=1,
                reason="r",
                reference="r",
            ),
        )
