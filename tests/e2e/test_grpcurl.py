"""Operators' view: grpcurl lists each service by reflection and checks its health."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from devstack import SERVICES, Stack

GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def grpcurl(*args: str) -> str:
    """Run grpcurl in plain text mode and return what it printed."""
    result = subprocess.run(
        [GRPCURL, "-plaintext", *args], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_grpcurl_lists_the_service_and_its_health_is_serving(
    running_stack: Stack, service: str
) -> None:
    """Reflection names the service's API, health and reflection services."""
    target = running_stack.config.grpc_target(service)

    listed = grpcurl(target, "list").split()
    health = json.loads(grpcurl(target, "grpc.health.v1.Health/Check"))

    assert f"tollgate.{service}.v1.{service.capitalize()}Service" in listed
    assert "grpc.health.v1.Health" in listed
    assert health == {"status": "SERVING"}


def test_grpcurl_describes_the_internal_rpcs(running_stack: Stack) -> None:
    """An operator can see the RPCs the gateway does not route, with their types."""
    target = running_stack.config.grpc_target("ledger")
    described = grpcurl(target, "describe", "tollgate.ledger.v1.LedgerService")
    assert "rpc Charge ( .tollgate.ledger.v1.ChargeRequest )" in described
    assert "rpc Refund ( .tollgate.ledger.v1.RefundRequest )" in described
