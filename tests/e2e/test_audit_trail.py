"""The audit trail: who, why, when and on behalf of which request, over gRPC."""

from __future__ import annotations

import grpc
from devstack import Stack

from tollgate.ledger.v1 import ledger_service_pb2 as pb
from tollgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc


async def test_transactions_record_the_user_reason_and_request_id(
    running_stack: Stack, log_in, company: str
) -> None:
    """The request id a client sent through the gateway reaches the ledger's record."""
    admin = log_in(f"ada@{company}")
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
        first = await stub.ListTransactions(
            pb.ListTransactionsRequest(organisation_id=org, page_size=2)
        )
        second = await stub.ListTransactions(
            pb.ListTransactionsRequest(
                organisation_id=org, page_size=2, page_token=first.next_page_token
            )
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
