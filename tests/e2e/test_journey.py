"""The whole product, as an external client sees it through the gateway."""

from __future__ import annotations

import httpx
from conftest_helpers import poll_job

TEXT = (
    "Credits are granted by admins. Credits are spent on calls. "
    "The weather was pleasant. Every call spends credits from the ledger."
)


def test_two_colleagues_share_an_organisation_and_spend_its_credits(
    log_in, company: str, anonymous: httpx.Client
) -> None:
    """Login, roles, grant, analyse, summarise, polling, balance and isolation."""
    admin = log_in(f"ada@{company}")
    member = log_in(f"bob@{company}")
    stranger = log_in(f"eve@other-{company}")

    me = admin.get("/api/me").json()
    assert me["user"]["role"] == "admin"
    assert member.get("/api/me").json()["user"]["role"] == "member"
    org = me["organisation"]
    assert member.get("/api/me").json()["organisation"]["id"] == org["id"]
    assert org["slug"] == company.replace(".", "-")
    assert org["name"] == company.split(".")[0].capitalize()

    grant = admin.post("/api/credits/grant", json={"amount": 100, "reason": "Welcome"})
    assert grant.status_code == 200
    assert grant.json()["message"] == "Granted 100 credits"
    assert grant.json()["balance"] == 100

    refused = member.post("/api/credits/grant", json={"amount": 5, "reason": "Me"})
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": {
            "error": "forbidden",
            "message": "This action requires admin privileges.",
        }
    }

    analysed = member.post("/api/analyse", json={"text": "The cat and the hat."})
    assert analysed.status_code == 200
    assert analysed.json() == {
        "result": "Analysis complete. Word count: 5. Unique words: 4.",
        "credits_remaining": 75,
    }

    submitted = member.post("/api/summarise", json={"text": TEXT})
    assert submitted.status_code == 200
    assert submitted.json()["credits_remaining"] == 65
    job_id = submitted.json()["job_id"]

    job = poll_job(member, job_id)
    assert job["status"] == "completed"
    assert job["error"] is None
    sentences = [s.strip() for s in TEXT.split(".") if s.strip()]
    assert all(part.strip() in sentences for part in job["result"].split(".") if part)

    balance = admin.get("/api/credits/balance").json()
    assert balance["organisation_id"] == org["id"]
    assert balance["balance"] == 65
    recent = balance["recent_transactions"]
    assert [(t["amount"], t["reason"]) for t in recent] == [
        (-10, "API call: /api/summarise"),
        (-25, "API call: /api/analyse"),
        (100, "Welcome"),
    ]
    assert [t["created_at"] for t in recent] == sorted(
        (t["created_at"] for t in recent), reverse=True
    )

    foreign = stranger.get(f"/api/jobs/{job_id}")
    assert foreign.status_code == 404
    assert foreign.json()["detail"]["error"] == "job_not_found"
    assert anonymous.get(f"/api/jobs/{job_id}").status_code == 401


def test_health_reports_every_database_reachable(anonymous: httpx.Client) -> None:
    """GET /health is 200 with the documented body while everything is up."""
    response = anonymous.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["database"]) == ("healthy", "reachable")
    assert body["timestamp"].endswith("Z")


def test_jwks_lists_public_signing_keys_only(anonymous: httpx.Client) -> None:
    """The JWK Set holds EC public keys with kid, alg and use, and no private part."""
    keys = anonymous.get("/.well-known/jwks.json").json()["keys"]
    assert keys
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["alg"], key["use"]) == ("EC", "ES256", "sig")


def test_login_redirect_carries_pkce_state_and_nonce(anonymous: httpx.Client) -> None:
    """/auth/google is a 302 to the provider with a complete code-flow request."""
    response = anonymous.get("/auth/google")
    assert response.status_code == 302
    url = httpx.URL(response.headers["location"])
    params = dict(url.params)
    assert params["response_type"] == "code"
    assert params["scope"] == "openid email profile"
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"]
    assert params["redirect_uri"].endswith("/auth/callback")
    assert "tollgate_login=" in response.headers["set-cookie"]
    assert "HttpOnly" in response.headers["set-cookie"]
    second = anonymous.get("/auth/google")
    assert (
        dict(httpx.URL(second.headers["location"]).params)["state"] != params["state"]
    )


def test_every_response_carries_a_request_id(anonymous: httpx.Client) -> None:
    """x-request-id is echoed when sent and generated when not."""
    echoed = anonymous.get("/health", headers={"x-request-id": "trace-me-123"})
    assert echoed.headers["x-request-id"] == "trace-me-123"
    assert anonymous.get("/api/me").headers["x-request-id"]
    assert anonymous.get("/no/such/route").headers["x-request-id"]


def test_a_paid_call_with_an_idempotency_key_charges_once(log_in, company: str) -> None:
    """The same key and body replay the stored response without charging again."""
    admin = log_in(f"ada@{company}")
    admin.post("/api/credits/grant", json={"amount": 100, "reason": "Start"})
    body = {"text": "Count these words, twice over."}

    first = admin.post("/api/analyse", json=body, headers={"Idempotency-Key": "k-1"})
    again = admin.post("/api/analyse", json=body, headers={"IDEMPOTENCY-KEY": "k-1"})

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert admin.get("/api/credits/balance").json()["balance"] == 75
