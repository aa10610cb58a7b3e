"""The shared interceptor's mapping of failures, over a loopback gRPC server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
import sqlalchemy.exc

from tollgate_common.errors import InvalidRequest
from tollgate_common.interceptor import CallContextInterceptor

METHOD = "/test.v1.TestService/Call"


def raising(error: BaseException) -> Callable:
    """A unary behaviour that raises ``error``."""

    async def behaviour(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise error

    return behaviour


@pytest.fixture
async def call() -> AsyncIterator[Callable]:
    """Call a test method whose behaviour the test chooses, without auth."""
    behaviours: dict[str, Callable] = {}

    async def dispatch(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return await behaviours["current"](request, context)

    handler = grpc.method_handlers_generic_handler(
        "test.v1.TestService", {"Call": grpc.unary_unary_rpc_method_handler(dispatch)}
    )
    server = grpc.aio.server(
        interceptors=[CallContextInterceptor(None, {}, anonymous_methods={METHOD})]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    async def _call(behaviour: Callable) -> grpc.aio.AioRpcError:
        behaviours["current"] = behaviour
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await channel.unary_unary(METHOD)(
                b"", metadata=(("x-request-id", "req-42"),)
            )
        return failed.value

    yield _call
    await channel.close()
    await server.stop(None)


def public(error: grpc.aio.AioRpcError) -> tuple[str, dict]:
    """The HTTP status and envelope the gateway will show."""
    meta = dict(error.trailing_metadata())
    return meta["x-http-status"], json.loads(meta["x-error-envelope"])["detail"]


async def test_an_unexpected_exception_is_500_with_the_request_id(call) -> None:
    """Never a stack trace; the request id lets an operator find the log line."""
    status, detail = public(await call(raising(ValueError("secret detail"))))
    assert status == "500"
    assert detail == {
        "error": "internal_error",
        "message": "Something went wrong on our side.",
        "request_id": "req-42",
    }


@pytest.mark.parametrize(
    "error",
    [
        sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError()),
        sqlalchemy.exc.TimeoutError("QueuePool limit reached"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
    ],
)
async def test_an_unreachable_dependency_is_503(call, error: BaseException) -> None:
    """Database, pool and network failures are service_unavailable."""
    status, detail = public(await call(raising(error)))
    assert (status, detail["error"]) == ("503", "service_unavailable")


async def test_a_cause_chain_is_followed(call) -> None:
    """A wrapped connection failure is still a 503."""
    try:
        try:
            raise ConnectionResetError(104, "reset")
        except ConnectionResetError as inner:
            raise RuntimeError("while charging") from inner
    except RuntimeError as wrapped:
        status, _ = public(await call(raising(wrapped)))
    assert status == "503"


async def test_a_domain_error_keeps_its_message_and_context(call) -> None:
    """A validation error is 422 with its message."""
    status, detail = public(await call(raising(InvalidRequest("body → text: short"))))
    assert status == "422"
    assert detail == {"error": "validation_error", "message": "body → text: short"}


async def test_a_request_that_does_not_decode_is_400_malformed_request() -> None:
    """Bytes that are not the request message never become a 500."""
    from tollgate.jobs.v1 import jobs_service_pb2_grpc as pb_grpc

    server = grpc.aio.server(interceptors=[CallContextInterceptor(None, {})])
    pb_grpc.add_JobsServiceServicer_to_server(pb_grpc.JobsServiceServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        analyse = channel.unary_unary("/tollgate.jobs.v1.JobsService/Analyse")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await analyse(b"\x0a\x01\xff")  # field 1, a string that is not UTF-8
    await server.stop(None)
    status, detail = public(failed.value)
    assert (status, detail["error"]) == ("400", "malformed_request")
