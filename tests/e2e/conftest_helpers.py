"""Helpers for end-to-end tests."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from devclient import Person, login
from devstack import Stack, StackConfig


def poll_job(
    client: httpx.Client, job_id: str, timeout: float = 20.0
) -> dict[str, Any]:
    """Poll a job until it is completed or failed, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/api/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = dict(response.json())
        if job["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def side_stack(
    base: StackConfig, name: str, offset: int, **changes: Any
) -> StackConfig:
    """A stack beside the suite's own: every port ``offset`` higher, its own
    database and Redis stream, and whatever else ``changes`` says."""
    return dataclasses.replace(
        base,
        name=f"{base.name}-{name}",
        gateway_port=base.gateway_port + offset,
        admin_port=base.admin_port + offset,
        grpc_base_port=base.grpc_base_port + offset,
        metrics_base_port=base.metrics_base_port + offset,
        oidc_port=base.oidc_port + offset,
        database=f"{base.database}_{name}",
        queue_stream=f"{base.queue_stream}-{name}",
        **changes,
    )


@contextlib.contextmanager
def running(config: StackConfig) -> Iterator[Stack]:
    """The stack up for the block (after stopping what an earlier run left)."""
    stack = Stack(config)
    stack.down()
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def log_in_to(stack: Stack) -> Callable[..., httpx.Client]:
    """A ``log_in`` for this stack, shaped like the e2e fixture of that name."""

    def _log_in(email: str, **claims: object) -> httpx.Client:
        person = Person(sub=email, email=email, name=email.split("@")[0])
        token = login(stack.config.gateway_url, stack.config.oidc_issuer, person)
        return httpx.Client(
            base_url=stack.config.gateway_url,
            headers={"authorization": f"Bearer {token['access_token']}"},
            timeout=30,
        )

    return _log_in
