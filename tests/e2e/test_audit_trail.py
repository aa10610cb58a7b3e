"""The audit trail: who, why, when and on behalf of which request, over gRPC."""

from __future__ import annotations

import grpc
import pytest
from devstack import Stack

from tollgate.ledger.v1 import ledger_service_pb2 as pb
from tollgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc


async def test_transactions_record_the_user_reason_and_request_id(
    running_stack: Stack, log_in, company: str
) -> None:
    """The request id a client sent through the gateway reaches the ledger's record."""
    admin = log_in(f"ada@{company}")
    stranger = log_in(f"eve@other-{company}")
    me = admin.get("/api/me").json()
    admin.post(
        "/api/credits/grant",
        json={"amount": 100, "reason": "audited"},
        headers={"x-request-id": f"grant-{company}"},
    )
    for i in range(3):
        admin.post(
            "/api/analyse",
            json={"text": f"analysis number {i}"},
            headers={"x-request-id": f"analyse-{i}-{company}"},
        )

    target = running_stack.config.grpc_target("ledger")
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        org = me["organisation"]["id"]
        token = (("authorization", admin.headers["authorization"]),)
        first = await stub.ListTransactions(
            pb.ListTransactionsRequest(organisation_id=org, page_size=2),
            metadata=token,
        )
        second = await stub.ListTransactions(
            pb.ListTransactionsRequest(
                organisation_id=org, page_size=2, page_token=first.next_page_token
            ),
            metadata=token,
        )
        for metadata in ((), (("authorization", stranger.headers["authorization"]),)):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.ListTransactions(
                    pb.ListTransactionsRequest(organisation_id=org), metadata=metadata
                )

    page = [*first.transactions, *second.transactions]
    assert [t.kind for t in page] == ["charge", "charge", "charge", "grant"]
    assert [t.request_id for t in page] == [
        f"analyse-2-{company}",
        f"analyse-1-{company}",
        f"analyse-0-{company}",
        f"grant-{company}",
    ]
    assert {t.user_id for t in page} == {me["user"]["id"]}
    assert page[-1].reason == "audited" and page[0].reason == "API call: /api/analyse"
    assert second.next_page_token == ""


async def test_the_internal_charge_needs_the_token_of_the_organisation_it_charges(
    running_stack: Stack, log_in, company: str
) -> None:
    """Without a token no one is charged; with one, only its own organisation."""
    victim = log_in(f"ada@{company}")
    victim.post("/api/credits/grant", json={"amount": 100, "reason": "savings"})
    victim_org = victim.get("/api/me").json()["organisation"]["id"]
    attacker = log_in(f"mallory@other-{company}")
    token = attacker.headers["authorization"]

    def charge(org: str) -> pb.ChargeRequest:
        return pb.ChargeRequest(
            organisation_id=org, user_id=victim_org, amount=7, reason="x", reference="x"
        )

    target = running_stack.config.grpc_target("ledger")
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        for metadata in ((), (("authorization", token),)):
            try:
                await stub.Charge(charge(victim_org), metadata=metadata)
            except grpc.aio.AioRpcError as error:
                assert error.code() in {
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.PERMISSION_DENIED,
                }
            else:
                raise AssertionError("the charge went through")
    assert victim.get("/api/credits/balance").json()["balance"] == 100
