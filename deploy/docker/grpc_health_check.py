"""Exit 0 if the gRPC server at an address says SERVING (``grpc.health.v1``).

    python grpc_health_check.py 127.0.0.1:50051 [service]

The Compose healthchecks run it inside each service's container; Kubernetes asks the
same health service through its own ``grpc`` probes. A service reports NOT_SERVING
while it cannot reach its database.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT_SECONDS = 3.0


def check(target: str, service: str = "") -> bool:
    """Whether ``target`` answers the health check for ``service`` with SERVING."""
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service),
                timeout=TIMEOUT_SECONDS,
            )
        except grpc.RpcError as error:
            sys.stderr.write(f"{target}: {error.code().name}\n")
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def main(argv: list[str]) -> int:
    """The exit status for ``argv`` (the address, then optionally a service name)."""
    if len(argv) not in (1, 2):
        sys.stderr.write("usage: grpc_health_check.py HOST:PORT [SERVICE]\n")
        return 2
    return 0 if check(*argv) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
