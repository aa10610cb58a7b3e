"""JobsService over gRPC: protobuf in, use case, protobuf out."""

from __future__ import annotations

from typing import TypeVar

import grpc
from google.protobuf import struct_pb2
from google.protobuf.json_format import ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from tollgate.jobs.v1 import jobs_service_pb2 as pb
from tollgate.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from tollgate_common import idempotency
from tollgate_common.context import Principal, current_principal
from tollgate_common.errors import AuthenticationRequired
from tollgate_jobs.service_layer.products import Answer, Products

M = TypeVar("M", pb.AnalyseResponse, pb.SummariseResponse)


class JobsServicer(pb_grpc.JobsServiceServicer):
    """Translates between JobsService messages and the products' use cases."""

    def __init__(self, products: Products) -> None:
        self._products = products

    async def Analyse(
        self, request: pb.AnalyseRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnalyseResponse:
        """Analyse a text for 25 credits."""
        key = idempotency.key_from(context.invocation_metadata() or ())
        answer = await self._products.analyse(_caller(), request.text, key)
        return await _respond(context, answer, pb.AnalyseResponse())

    async def Summarise(
        self, request: pb.SummariseRequest, context: grpc.aio.ServicerContext
    ) -> pb.SummariseResponse:
        """Queue a summary for 10 credits."""
        key = idempotency.key_from(context.invocation_metadata() or ())
        answer = await self._products.summarise(_caller(), request.text, key)
        return await _respond(context, answer, pb.SummariseResponse())

    async def GetJob(
        self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetJobResponse:
        """A job of the caller's organisation."""
        job = await self._products.job(_caller(), request.job_id)
        created = Timestamp()
        created.FromDatetime(job.created_at)
        return pb.GetJobResponse(
            job_id=str(job.id),
            status=job.status.value,
            result=_nullable(job.result),
            error=_nullable(job.error),
            created_at=created,
        )


def _caller() -> Principal:
    principal = current_principal()
    if principal is None:
        raise AuthenticationRequired("A bearer token is required.")
    return principal


async def _respond(context: grpc.aio.ServicerContext, answer: Answer, message: M) -> M:
    if answer.replayed:
        await context.send_initial_metadata(((idempotency.REPLAYED_HEADER, "true"),))
    return ParseDict(answer.body, message)


def _nullable(value: str | None) -> struct_pb2.Value:
    # A Value set to null prints as JSON null, which the public shape requires.
    if value is None:
        return struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
    return struct_pb2.Value(string_value=value)
