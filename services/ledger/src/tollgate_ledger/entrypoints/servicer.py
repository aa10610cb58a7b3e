"""LedgerService over gRPC: protobuf in, use case, protobuf out."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter

from tollgate.ledger.v1 import ledger_service_pb2 as pb
from tollgate.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from tollgate_common import idempotency
from tollgate_common.context import Principal, current_principal, current_request_id
from tollgate_common.errors import AuthenticationRequired, Forbidden, InvalidRequest
from tollgate_ledger.domain.model import Movement, Transaction
from tollgate_ledger.service_layer.ledger import Ledger, Posted

POSTINGS = Counter(
    "tollgate_ledger_transactions_total",
    "Ledger transactions recorded (replays not counted), by kind.",
    ["kind"],
)
CREDITS = Counter(
    "tollgate_ledger_credits_total",
    "Credits moved by recorded transactions, by kind.",
    ["kind"],
)

# Called by the other services and operators only; the gateway does not route them.
# They need no token of their own: Charge and ListTransactions check the caller's
# (forwarded) one themselves; Refund trusts the network, as the worker that refunds
# a failed job has no end user.
INTERNAL_METHODS = frozenset(
    f"/tollgate.ledger.v1.LedgerService/{name}"
    for name in ("Charge", "Refund", "ListTransactions")
)


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    """Translates between LedgerService messages and the ledger's use cases."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def Grant(
        self, request: pb.GrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.GrantResponse:
        """Grant credits to the caller's organisation (admins only)."""
        principal = _caller()
        if not principal.is_admin:
            raise Forbidden("This action requires admin privileges.")
        key = idempotency.key_from(context.invocation_metadata() or ())
        movement = Movement(
            organisation_id=principal.organisation_id,
            amount=request.amount,
            reason=request.reason,
            reference=f"grant:{key}" if key else f"grant:{uuid.uuid4()}",
            user_id=principal.user_id,
            request_id=current_request_id(),
        )
        posted = _count(await self._ledger.grant(movement))
        await _mark_replay(context, posted)
        return pb.GrantResponse(
            message=f"Granted {posted.transaction.amount} credits",
            balance=posted.transaction.balance_after,
            transaction_id=str(posted.transaction.id),
        )

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalanceResponse:
        """The caller's balance and newest transactions."""
        principal = _caller()
        balance, recent = await self._ledger.balance(principal.organisation_id)
        return pb.GetBalanceResponse(
            organisation_id=str(principal.organisation_id),
            balance=balance,
            recent_transactions=[_public(t) for t in recent],
        )

    async def Charge(
        self, request: pb.ChargeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ChargeResponse:
        """Charge an organisation on behalf of another service.

        The calling service forwards its end user's token, and only that user's
        organisation can be charged: a caller without one charges no one.
        """
        organisation_id = _uuid("organisation_id", request.organisation_id)
        principal = _caller()
        if principal.organisation_id != organisation_id:
            raise Forbidden("A caller may charge only its own organisation.")
        movement = Movement(
            organisation_id=organisation_id,
            amount=request.amount,
            reason=request.reason,
            reference=f"charge:{request.reference}",
            user_id=_uuid("user_id", request.user_id),
            request_id=current_request_id(),
        )
        posted = _count(await self._ledger.charge(movement))
        return pb.ChargeResponse(
            transaction_id=str(posted.transaction.id),
            balance=posted.transaction.balance_after,
            replayed=posted.replayed,
        )

    async def Refund(
        self, request: pb.RefundRequest, context: grpc.aio.ServicerContext
    ) -> pb.RefundResponse:
        """Reverse a charge on behalf of another service."""
        charge_id = _uuid("charge_transaction_id", request.charge_transaction_id)
        principal = current_principal()
        movement = Movement(
            organisation_id=_uuid("organisation_id", request.organisation_id),
            amount=0,
            reason=request.reason,
            reference=f"refund:{charge_id}",
            user_id=principal.user_id if principal else None,
            request_id=current_request_id(),
        )
        posted = _count(await self._ledger.refund(movement, charge_id))
        return pb.RefundResponse(
            transaction_id=str(posted.transaction.id),
            balance=posted.transaction.balance_after,
            amount=posted.transaction.amount,
            replayed=posted.replayed,
        )

    async def ListTransactions(
        self, request: pb.ListTransactionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTransactionsResponse:
        """A page of an organisation's transactions with their audit trail.

        Only with a token of that organisation: the trail names its users.
        """
        organisation_id = _uuid("organisation_id", request.organisation_id)
        if _caller().organisation_id != organisation_id:
            raise Forbidden("Only the organisation's own token reads its trail.")
        size = request.page_size or 10
        if not 1 <= size <= 100:
            raise InvalidRequest("page_size: must be between 1 and 100")
        before = _cursor(request.page_token) if request.page_token else None
        # One more than asked says whether another page follows.
        page = await self._ledger.transactions(organisation_id, size + 1, before)
        token = ""
        if len(page) > size:
            page = page[:size]
            last = page[-1]
            assert last.created_at is not None
            raw = f"{last.created_at.isoformat()}|{last.id}".encode()
            token = base64.urlsafe_b64encode(raw).decode()
        return pb.ListTransactionsResponse(
            transactions=[_audited(t) for t in page], next_page_token=token
        )


def _caller() -> Principal:
    principal = current_principal()
    if principal is None:
        raise AuthenticationRequired("A bearer token is required.")
    return principal


async def _mark_replay(context: grpc.aio.ServicerContext, posted: Posted) -> None:
    if posted.replayed:
        await context.send_initial_metadata(((idempotency.REPLAYED_HEADER, "true"),))


def _count(posted: Posted) -> Posted:
    if not posted.replayed:
        kind = posted.transaction.kind.value
        POSTINGS.labels(kind).inc()
        CREDITS.labels(kind).inc(posted.transaction.amount)
    return posted


def _uuid(field: str, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidRequest(f"{field}: must be a UUID") from None


def _cursor(token: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, _, ident = base64.urlsafe_b64decode(token).decode().partition("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except ValueError:
        raise InvalidRequest("page_token: not a token this service issued") from None


def _timestamp(value: datetime | None) -> Timestamp:
    stamp = Timestamp()
    if value is not None:
        stamp.FromDatetime(value)
    return stamp


def _public(transaction: Transaction) -> pb.Transaction:
    return pb.Transaction(
        id=str(transaction.id),
        amount=transaction.signed_amount,
        reason=transaction.reason,
        created_at=_timestamp(transaction.created_at),
        user_id=str(transaction.user_id) if transaction.user_id else "",
    )


def _audited(transaction: Transaction) -> pb.LedgerTransaction:
    return pb.LedgerTransaction(
        id=str(transaction.id),
        kind=transaction.kind.value,
        amount=transaction.signed_amount,
        reason=transaction.reason,
        user_id=str(transaction.user_id) if transaction.user_id else "",
        request_id=transaction.request_id,
        reference=transaction.reference,
        reverses_transaction_id=str(transaction.reverses_id or ""),
        created_at=_timestamp(transaction.created_at),
    )
