"""The per-organisation rate limit: a token bucket, and its 429 over gRPC."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest
from test_jobs_servicer import jwks, token

from tollgate.jobs.v1 import jobs_service_pb2 as pb
from tollgate.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from tollgate_common.auth import JwksCache, TokenVerifier
from tollgate_common.interceptor import CallContextInterceptor
from tollgate_common.ratelimit import RateLimiter
from tollgate_jobs.entrypoints.errors import ERRORS


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_callers_wait_for_tokens() -> None:
    """60 a minute: the 61st call waits a second, and one comes back per second."""
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    assert all(limiter.acquire("org") is None for _ in range(60))
    assert limiter.acquire("org") == 1
    clock.now += 1.0
    assert limiter.acquire("org") is None
    assert limiter.acquire("org") == 1


def test_organisations_have_their_own_buckets() -> None:
    """One organisation's traffic never limits another."""
    limiter = RateLimiter(1, clock=Clock())
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("b") is None


async def test_over_the_limit_a_call_is_429_with_retry_after() -> None:
    """The envelope is rate_limited and the Retry-After header is set."""
    verifier = TokenVerifier(JwksCache(jwks), "tollgate", "tollgate-api")
    interceptor = CallContextInterceptor(verifier, ERRORS, limiter=RateLimiter(1))
    server = grpc.aio.server(interceptors=[interceptor])
    pb_grpc.add_JobsServiceServicer_to_server(pb_grpc.JobsServiceServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    metadata = (("authorization", f"Bearer {token(org=uuid.uuid4())}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.JobsServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as first:
            await stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError) as second:
            await stub.GetJob(pb.GetJobRequest(job_id="x"), metadata=metadata)
    await server.stop(None)
    assert first.value.code() is not grpc.StatusCode.RESOURCE_EXHAUSTED
    meta = dict(second.value.trailing_metadata())
    assert meta["x-http-status"] == "429"
    assert int(meta["retry-after"]) >= 1
    assert json.loads(meta["x-error-envelope"])["detail"]["error"] == "rate_limited"
