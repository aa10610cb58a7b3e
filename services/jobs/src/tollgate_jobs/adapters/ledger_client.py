"""The ledger over gRPC, with its failures translated into the jobs domain."""

from __future__ import annotations

import json
import uuid

import grpc

from tollgate.ledger.v1 import ledger_service_pb2 as pb
from tollgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from tollgate_common.errors import DependencyUnavailable
from tollgate_common.grpc_errors import ENVELOPE_HEADER
from tollgate_jobs.domain.errors import InsufficientCredits
from tollgate_jobs.service_layer.ports import Charge

_UNREACHABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}


class GrpcLedger:
    """``LedgerPort`` on LedgerService's Charge and Refund."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = pb_grpc.LedgerServiceStub(channel)

    async def charge(
        self,
        organisation_id: uuid.UUID,
        user_id: uuid.UUID,
        amount: int,
        reason: str,
        reference: str,
    ) -> Charge:
        """Charge through the ledger."""
        request = pb.ChargeRequest(
            organisation_id=str(organisation_id),
            user_id=str(user_id),
            amount=amount,
            reason=reason,
            reference=reference,
        )
        try:
            response = await self._stub.Charge(request)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error
        return Charge(uuid.UUID(response.transaction_id), response.balance)

    async def refund(
        self, organisation_id: uuid.UUID, charge_id: uuid.UUID, reason: str
    ) -> None:
        """Refund through the ledger."""
        request = pb.RefundRequest(
            organisation_id=str(organisation_id),
            charge_transaction_id=str(charge_id),
            reason=reason,
        )
        try:
            await self._stub.Refund(request)
        except grpc.aio.AioRpcError as error:
            raise _translate(error) from error


def _translate(error: grpc.aio.AioRpcError) -> Exception:
    if error.code() in _UNREACHABLE:
        return DependencyUnavailable("The ledger is unavailable; nothing was charged.")
    detail = _detail(error)
    if detail.get("error") == "insufficient_credits":
        return InsufficientCredits(
            "The organisation does not have enough credits.",
            balance=detail.get("balance"),
            required=detail.get("required"),
        )
    return error


def _detail(error: grpc.aio.AioRpcError) -> dict[str, object]:
    for key, value in error.trailing_metadata() or ():
        if key == ENVELOPE_HEADER and isinstance(value, str):
            return dict(json.loads(value).get("detail", {}))
    return {}
