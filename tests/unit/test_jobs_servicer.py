"""JobsService over a real in-process gRPC server, with the use cases on fakes.

grpcio-testing drives only synchronous servicers, and these are ``grpc.aio`` ones,
so the servicer and the shared interceptor are exercised over a loopback channel.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fakes import FakeJobs, FakeLedger, FakeQueue, FakeRecords

from tollgate.jobs.v1 import jobs_service_pb2 as pb
from tollgate.jobs.v1 import jobs_service_pb2_grpc as pb_grpc
from tollgate_common.auth import JwksCache, TokenVerifier
from tollgate_common.interceptor import CallContextInterceptor
from tollgate_jobs.entrypoints.errors import ERRORS
from tollgate_jobs.entrypoints.servicer import JobsServicer
from tollgate_jobs.service_layer.products import Products

KEY = ec.generate_private_key(ec.SECP256R1())
KID = "test-key"


def token(role: str = "member", org: uuid.UUID | None = None, **extra: object) -> str:
    """A token signed by the test key."""
    claims = {
        "iss": "tollgate",
        "aud": "tollgate-api",
        "sub": str(uuid.uuid4()),
        "org": str(org or uuid.uuid4()),
        "role": role,
        "iat": 1_700_000_000,
        "exp": 4_000_000_000,
        "jti": uuid.uuid4().hex,
        **extra,
    }
    return jwt.encode(claims, KEY, algorithm="ES256", headers={"kid": KID})


async def jwks() -> list[dict]:
    """The test key as a JWK Set."""
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
    return [{**public, "kid": KID, "alg": "ES256", "use": "sig"}]


@pytest.fixture
async def stub() -> AsyncIterator[pb_grpc.JobsServiceStub]:
    """A stub connected to JobsService on fakes."""
    products = Products(FakeLedger(), FakeJobs(), FakeQueue(), FakeRecords(), 30)
    verifier = TokenVerifier(JwksCache(jwks), "tollgate", "tollgate-api")
    server = grpc.aio.server(interceptors=[CallContextInterceptor(verifier, ERRORS)])
    pb_grpc.add_JobsServiceServicer_to_server(JobsServicer(products), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.JobsServiceStub(channel)
    await server.stop(None)


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The string trailing metadata of a failed call."""
    return {k: v for k, v in error.trailing_metadata() if isinstance(v, str)}


async def test_without_a_token_the_call_is_unauthenticated(stub) -> None:
    """401 with the envelope in the trailers."""
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Analyse(pb.AnalyseRequest(text="long enough text"))
    assert failed.value.code() is grpc.StatusCode.UNAUTHENTICATED
    meta = trailers(failed.value)
    assert meta["x-http-status"] == "401"
    assert json.loads(meta["x-error-envelope"])["detail"]["error"] == (
        "authentication_required"
    )


async def test_a_replayed_answer_is_flagged_in_the_metadata(stub) -> None:
    """The second call with a key carries idempotent-replayed: true."""
    metadata = (("authorization", f"Bearer {token()}"), ("idempotency-key", "k"))
    request = pb.AnalyseRequest(text="The cat and the hat.")
    first = stub.Analyse(request, metadata=metadata)
    await first
    again = stub.Analyse(request, metadata=metadata)
    response = await again
    assert dict(await again.initial_metadata())["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in dict(await first.initial_metadata())
    assert response.credits_remaining == 75


async def test_an_unknown_job_answers_job_not_found(stub) -> None:
    """404 job_not_found, for malformed ids too."""
    for job_id in (str(uuid.uuid4()), "123"):
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.GetJob(
                pb.GetJobRequest(job_id=job_id),
                metadata=(("authorization", f"Bearer {token()}"),),
            )
        assert failed.value.code() is grpc.StatusCode.NOT_FOUND
        assert trailers(failed.value)["x-http-status"] == "404"


async def test_a_token_of_another_key_is_refused(stub) -> None:
    """A token signed by a key outside the JWK Set is unauthenticated."""
    other = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(
        {"sub": "x"}, other, algorithm="ES256", headers={"kid": "unknown"}
    )
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.GetJob(
            pb.GetJobRequest(job_id="x"),
            metadata=(("authorization", f"Bearer {forged}"),),
        )
    assert failed.value.code() is grpc.StatusCode.UNAUTHENTICATED
