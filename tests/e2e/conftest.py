"""End-to-end fixtures: a client of the test stack's gateway, and logins."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from devclient import Person, login
from devstack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def gateway(running_stack: Stack) -> str:
    """The test stack's public base URL."""
    return running_stack.config.gateway_url


@pytest.fixture(scope="session")
def issuer(running_stack: Stack) -> str:
    """The development identity provider of the test stack."""
    return running_stack.config.oidc_issuer


@pytest.fixture
def anonymous(gateway: str) -> Iterator[httpx.Client]:
    """A client with no token."""
    with httpx.Client(base_url=gateway, timeout=15) as client:
        yield client


Login = Callable[..., httpx.Client]


@pytest.fixture
def log_in(gateway: str, issuer: str) -> Iterator[Login]:
    """Log a person in through the gateway; returns a client carrying the token."""
    clients: list[httpx.Client] = []

    def _log_in(email: str, **claims: object) -> httpx.Client:
        person = Person(
            sub=str(claims.pop("sub", uuid.uuid4())),
            email=email,
            name=str(claims.pop("name", email.split("@")[0].title())),
            **claims,  # type: ignore[arg-type]
        )
        token = login(gateway, issuer, person)
        client = httpx.Client(
            base_url=gateway,
            headers={"authorization": f"Bearer {token['access_token']}"},
            timeout=15,
        )
        clients.append(client)
        return client

    yield _log_in
    for client in clients:
        client.close()


@pytest.fixture
def company() -> str:
    """A fresh company domain, so every test starts with a new organisation."""
    return f"co-{uuid.uuid4().hex[:10]}.example"
