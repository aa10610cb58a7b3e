"""``make demo``: login, grant, analyse, summarise and polling, against a running stack.

Prints every request and response, so that a new user sees the API at work.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid

import httpx

sys.path.insert(0, os.path.dirname(__file__))
from devclient import Person, login

GATEWAY = os.environ.get("TOLLGATE_GATEWAY", "http://localhost:8000")
ISSUER = os.environ.get("TOLLGATE_OIDC_ISSUER", "http://127.0.0.1:9400")
TEXT = (
    "Tollgate meters every call. Each organisation holds credits in a ledger. "
    "Credits are spent on analysis and summaries. The ledger never loses credits. "
    "Summaries run in the background."
)


def show(response: httpx.Response) -> httpx.Response:
    """Print a request and its response."""
    request = response.request
    print(f"\n> {request.method} {request.url}")
    if request.content:
        print(f"> {request.content.decode()}")
    replayed = response.headers.get("idempotent-replayed")
    print(f"< {response.status_code}" + (" (replayed)" if replayed else ""))
    try:
        print("< " + json.dumps(response.json(), indent=2).replace("\n", "\n< "))
    except ValueError:
        print(f"< {response.text[:200]}")
    return response


def main() -> None:
    """Walk through the product as a new organisation."""
    domain = f"demo-{uuid.uuid4().hex[:6]}.example"
    admin = Person(sub=f"admin-{domain}", email=f"ada@{domain}", name="Ada Admin")
    print(f"Logging in as {admin.email} through {GATEWAY}/auth/google ...")
    token = login(GATEWAY, ISSUER, admin)
    print(f"< 200 {json.dumps({**token, 'access_token': '<JWT>'})}")
    api = httpx.Client(
        base_url=GATEWAY,
        headers={"authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    show(api.get("/api/me"))
    show(api.post("/api/credits/grant", json={"amount": 100, "reason": "Demo grant"}))
    key = {"idempotency-key": f"demo-{uuid.uuid4()}"}
    show(api.post("/api/analyse", json={"text": TEXT}, headers=key))
    show(api.post("/api/analyse", json={"text": TEXT}, headers=key))
    job = show(api.post("/api/summarise", json={"text": TEXT})).json()
    for _ in range(50):
        status = show(api.get(f"/api/jobs/{job['job_id']}")).json()["status"]
        if status in ("completed", "failed"):
            break
        time.sleep(0.2)
    show(api.get("/api/credits/balance"))


if __name__ == "__main__":
    main()
