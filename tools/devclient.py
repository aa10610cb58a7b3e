"""A client of the public API, as a browser and a script would use it.

Used by ``make demo`` and by the end-to-end tests: it logs in through the gateway
and the development identity provider exactly as a person would, following the
redirects by hand so that every step can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Person:
    """An account at the development identity provider."""

    sub: str
    email: str
    name: str
    email_verified: bool = True
    hd: str | None = None

    def claims(self) -> dict[str, Any]:
        """What the provider's ID token will say."""
        claims: dict[str, Any] = {
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
        }
        if self.hd:
            claims["hd"] = self.hd
        return claims


def register(issuer: str, person: Person) -> None:
    """Create or update the person at the development provider."""
    response = httpx.put(f"{issuer}/users/{person.sub}", json=person.claims())
    response.raise_for_status()


def login(gateway: str, issuer: str, person: Person) -> dict[str, Any]:
    """Log in through /auth/google and /auth/callback; the token response."""
    register(issuer, person)
    with httpx.Client(base_url=gateway, follow_redirects=False, timeout=10) as browser:
        start = browser.get("/auth/google")
        if start.status_code != 302:
            raise RuntimeError(f"/auth/google answered {start.status_code}")
        consent = browser.post(start.headers["location"], data={"sub": person.sub})
        if consent.status_code != 302:
            raise RuntimeError(f"the provider answered {consent.status_code}")
        callback = browser.get(consent.headers["location"])
        if callback.status_code != 200:
            raise RuntimeError(
                f"/auth/callback answered {callback.status_code}: {callback.text}"
            )
        return dict(callback.json())
