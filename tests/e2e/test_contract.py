"""The public contract of API.md, checked literally through the gateway.

One test per row of the error table where the stack can produce it on demand, and
the shapes of every endpoint; each asserts status, headers and the exact JSON.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate_jobs.domain.model import fingerprint

JSON = "application/json"


def envelope(response: httpx.Response, status: int, error: str) -> dict:
    """Assert the error envelope and return its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(JSON)
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"detail"}
    detail = body["detail"]
    assert detail["error"] == error
    assert isinstance(detail["message"], str) and detail["message"]
    return detail


@pytest.fixture
def admin(log_in, company: str) -> httpx.Client:
    """The admin of a fresh organisation holding 100 credits."""
    client = log_in(f"ada@{company}")
    granted = client.post("/api/credits/grant", json={"amount": 100, "reason": "start"})
    assert granted.status_code == 200
    return client


def balance(client: httpx.Client) -> int:
    """The organisation's balance."""
    return int(client.get("/api/credits/balance").json()["balance"])


def test_a_failed_login_callback_is_400_google_auth_failed(
    anonymous: httpx.Client,
) -> None:
    """Unknown state, missing code and provider errors alike."""
    for query in ("code=abc&state=nope", "state=abc", "error=access_denied", ""):
        envelope(anonymous.get(f"/auth/callback?{query}"), 400, "google_auth_failed")


@pytest.mark.parametrize("body", [b"not json", b"{", b"[]", b"null", b"3", b'"x"'])
def test_a_body_that_is_not_a_json_object_is_400_malformed_request(
    admin: httpx.Client, body: bytes
) -> None:
    """Not JSON, or JSON but not an object."""
    response = admin.post("/api/analyse", content=body, headers={"content-type": JSON})
    envelope(response, 400, "malformed_request")
    assert balance(admin) == 100


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz"]
)
def test_without_a_valid_token_every_api_route_is_401(
    anonymous: httpx.Client, authorization: str | None
) -> None:
    """Missing and malformed bearer tokens."""
    headers = {"authorization": authorization} if authorization else {}
    for method, path in [
        ("GET", "/api/me"),
        ("GET", "/api/credits/balance"),
        ("POST", "/api/credits/grant"),
        ("POST", "/api/analyse"),
        ("POST", "/api/summarise"),
        ("GET", f"/api/jobs/{uuid.uuid4()}"),
    ]:
        body = {"amount": 1, "reason": "x"} if "grant" in path else {"text": "x" * 20}
        response = anonymous.request(
            method, path, headers=headers, json=body if method == "POST" else None
        )
        envelope(response, 401, "authentication_required")


def test_insufficient_credits_is_402_with_balance_and_required(
    log_in, company: str
) -> None:
    """402 carries the balance and the price, and is replayed as stored."""
    poor = log_in(f"ada@{company}")
    first = poor.post(
        "/api/analyse", json={"text": "x" * 20}, headers={"idempotency-key": "p"}
    )
    detail = envelope(first, 402, "insufficient_credits")
    assert (detail["balance"], detail["required"]) == (0, 25)

    poor.post("/api/credits/grant", json={"amount": 100, "reason": "now rich"})
    again = poor.post(
        "/api/analyse", json={"text": "x" * 20}, headers={"idempotency-key": "p"}
    )
    assert envelope(again, 402, "insufficient_credits") == detail
    assert again.headers["idempotent-replayed"] == "true"
    assert balance(poor) == 100


def test_a_member_granting_is_403_forbidden(log_in, company: str) -> None:
    """Only admins grant."""
    log_in(f"ada@{company}")
    member = log_in(f"bob@{company}")
    detail = envelope(
        member.post("/api/credits/grant", json={"amount": 5, "reason": "x"}),
        403,
        "forbidden",
    )
    assert detail["message"] == "This action requires admin privileges."


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "123", "not-a-uuid"])
def test_unknown_or_malformed_job_ids_are_404_job_not_found(
    admin: httpx.Client, job_id: str
) -> None:
    """A job that is not the caller's organisation's does not exist."""
    envelope(admin.get(f"/api/jobs/{job_id}"), 404, "job_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/job/123"),
        ("GET", "/api/jobs/"),
        ("DELETE", f"/api/jobs/{uuid.uuid4()}"),
        ("GET", "/api/analyse"),
        ("PUT", "/api/credits/grant"),
        ("POST", "/tollgate.ledger.v1.LedgerService/Charge"),
        ("GET", "/nothing/here"),
    ],
)
def test_unknown_routes_and_methods_are_404_not_found(
    admin: httpx.Client, method: str, path: str
) -> None:
    """Never 405, 415 or 503."""
    envelope(admin.request(method, path), 404, "not_found")


async def test_a_key_still_in_flight_is_409_idempotency_conflict(
    admin: httpx.Client, jobs_engine: AsyncEngine
) -> None:
    """While the first request with a key runs, a second gets 409 and no charge."""
    org = admin.get("/api/me").json()["organisation"]["id"]
    async with jobs_engine.begin() as db:
        await db.execute(
            sa.text("SELECT set_config('tollgate.organisation_id', :o, true)"),
            {"o": org},
        )
        await db.execute(
            sa.text(
                "INSERT INTO idempotency_records (organisation_id, key, endpoint, "
                "fingerprint, state, attempt, locked_until) VALUES (:org, 'busy', "
                "'/api/analyse', :fp, 'in_progress', 'a', now() + interval '1 hour')"
            ),
            {"org": org, "fp": fingerprint("/api/analyse", {"text": "x" * 20})},
        )
    response = admin.post(
        "/api/analyse", json={"text": "x" * 20}, headers={"Idempotency-Key": "busy"}
    )
    envelope(response, 409, "idempotency_conflict")
    assert balance(admin) == 100


def test_a_body_over_64_kib_is_413_and_charges_nothing(admin: httpx.Client) -> None:
    """A 5 MiB text never reaches a service."""
    response = admin.post("/api/analyse", json={"text": "x" * (5 * 1024 * 1024)})
    envelope(response, 413, "payload_too_large")
    assert balance(admin) == 100


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ammount": 500, "reason": "promo"}, "ammount"),
        ({"amount": -5, "reason": "promo"}, "amount"),
        ({"amount": 0, "reason": "promo"}, "amount"),
        ({"amount": 2.5, "reason": "promo"}, "amount"),
        ({"amount": 1_000_001, "reason": "promo"}, "amount"),
        ({"amount": "lots", "reason": "promo"}, "amount"),
        ({"amount": 5}, "reason"),
        ({"amount": 5, "reason": "x" * 501}, "reason"),
        (
            {"amount": 5, "reason": "promo", "organisation_id": str(uuid.uuid4())},
            "organisation_id",
        ),
    ],
)
def test_invalid_grants_are_422_naming_the_field_and_record_nothing(
    admin: httpx.Client, body: dict, field: str
) -> None:
    """Unknown, missing, mistyped and out-of-range fields."""
    detail = envelope(
        admin.post("/api/credits/grant", json=body), 422, "validation_error"
    )
    assert detail["message"].startswith(f"body → {field}: ")
    recent = admin.get("/api/credits/balance").json()["recent_transactions"]
    assert [t["reason"] for t in recent] == ["start"]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "too short"},
        {"text": "x" * 2001},
        {"text": 12345678901},
        {},
        {"text": "long enough text", "organisation_id": str(uuid.uuid4())},
        {"text": "long enough text", "user_id": str(uuid.uuid4())},
    ],
)
@pytest.mark.parametrize("path", ["/api/analyse", "/api/summarise"])
def test_invalid_paid_calls_are_422_and_charge_nobody(
    admin: httpx.Client, path: str, body: dict
) -> None:
    """Text rules, and fields a client may not set, name the field."""
    detail = envelope(admin.post(path, json=body), 422, "validation_error")
    assert detail["message"].startswith("body → ")
    assert balance(admin) == 100


@pytest.mark.parametrize("key", ["", "x" * 256, "ключ"])
def test_a_malformed_idempotency_key_is_422(admin: httpx.Client, key: str) -> None:
    """1 to 255 printable ASCII characters, the empty header included."""
    response = admin.post(
        "/api/analyse",
        json={"text": "long enough text"},
        headers={"Idempotency-Key": key.encode()},
    )
    envelope(response, 422, "validation_error")
    assert balance(admin) == 100


def test_a_key_reused_for_another_body_or_endpoint_is_422(admin: httpx.Client) -> None:
    """The key names one request; nothing is charged for the reuse."""
    key = {"Idempotency-Key": "order-1"}
    assert admin.post(
        "/api/analyse", json={"text": "first text!"}, headers=key
    ).is_success
    other_body = admin.post("/api/analyse", json={"text": "second text"}, headers=key)
    other_endpoint = admin.post(
        "/api/summarise", json={"text": "first text!"}, headers=key
    )
    envelope(other_body, 422, "idempotency_key_reused")
    envelope(other_endpoint, 422, "idempotency_key_reused")
    assert balance(admin) == 75


def test_both_spellings_of_the_header_are_one_key(admin: httpx.Client) -> None:
    """IDEMPOTENCY-KEY and idempotency-key are the same header."""
    body = {"text": "long enough text"}
    first = admin.post("/api/analyse", json=body, headers={"IDEMPOTENCY-KEY": "same"})
    second = admin.post("/api/analyse", json=body, headers={"idempotency-key": "same"})
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert balance(admin) == 75


def test_a_grant_with_a_key_is_replayed(admin: httpx.Client) -> None:
    """Grants honour Idempotency-Key too."""
    body = {"amount": 50, "reason": "bonus"}
    first = admin.post(
        "/api/credits/grant", json=body, headers={"Idempotency-Key": "g"}
    )
    again = admin.post(
        "/api/credits/grant", json=body, headers={"Idempotency-Key": "g"}
    )
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert balance(admin) == 150
    reused = admin.post(
        "/api/credits/grant",
        json={"amount": 51, "reason": "bonus"},
        headers={"Idempotency-Key": "g"},
    )
    envelope(reused, 422, "idempotency_key_reused")


def test_success_shapes_are_exact(admin: httpx.Client) -> None:
    """Field names of every success body, nothing more, nothing less."""
    me = admin.get("/api/me").json()
    assert set(me) == {"user", "organisation"}
    assert set(me["user"]) == {
        "id",
        "email",
        "name",
        "role",
        "organisation_id",
        "created_at",
    }
    assert set(me["organisation"]) == {"id", "name", "slug", "created_at"}

    grant = admin.post("/api/credits/grant", json={"amount": 1, "reason": "r"}).json()
    assert set(grant) == {"message", "balance", "transaction_id"}
    assert str(uuid.UUID(grant["transaction_id"])) == grant["transaction_id"]

    held = admin.get("/api/credits/balance").json()
    assert set(held) == {"organisation_id", "balance", "recent_transactions"}
    assert all(
        set(t) == {"id", "amount", "reason", "created_at", "user_id"}
        for t in held["recent_transactions"]
    )

    analysed = admin.post("/api/analyse", json={"text": "long enough text"}).json()
    assert set(analysed) == {"result", "credits_remaining"}
    queued = admin.post("/api/summarise", json={"text": "long enough text"}).json()
    assert set(queued) == {"job_id", "credits_remaining"}
    job = admin.get(f"/api/jobs/{queued['job_id']}").json()
    assert set(job) == {"job_id", "status", "result", "error", "created_at"}
    assert job["status"] in {"pending", "running", "completed"}


@pytest.mark.parametrize(
    "path", ["/api/me", "/health", "/nope", "/api/credits/balance"]
)
def test_a_head_response_has_no_body_and_the_connection_stays_usable(
    admin: httpx.Client, path: str
) -> None:
    """HEAD answers headers only, so the next response on the connection is intact."""
    head = admin.head(path)
    assert head.content == b""
    after = admin.get("/api/me")
    assert after.status_code == 200 and after.json()["user"]


def test_query_parameters_never_override_the_path(log_in, company: str) -> None:
    """?job_id= cannot swap the job the path names."""
    admin = log_in(f"ada@{company}")
    admin.post("/api/credits/grant", json={"amount": 100, "reason": "start"})
    job = admin.post("/api/summarise", json={"text": "Some text to summarise."}).json()
    swapped = admin.get(f"/api/jobs/not-a-uuid?job_id={job['job_id']}")
    envelope(swapped, 404, "job_not_found")
    assert admin.get(f"/api/jobs/{job['job_id']}?job_id=x").status_code == 200


@pytest.mark.parametrize("path", ["/api/analyse", "/api/credits/grant"])
def test_an_empty_body_is_400_malformed_request(admin: httpx.Client, path: str) -> None:
    """No body at all is not a JSON object."""
    response = admin.post(path, content=b"", headers={"content-type": JSON})
    envelope(response, 400, "malformed_request")
    assert balance(admin) == 100


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": "5", "reason": "r"}, "amount"),
        ({"amount": 5, "reason": 7}, "reason"),
    ],
)
def test_json_types_are_strict(admin: httpx.Client, body: dict, field: str) -> None:
    """A number in a string is not an integer, nor a number a string."""
    detail = envelope(
        admin.post("/api/credits/grant", json=body), 422, "validation_error"
    )
    assert detail["message"].startswith(f"body → {field}: ")
    assert balance(admin) == 100


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/summarise", {"text": "Hello\u0000 world. Second."}),
        ("/api/analyse", {"text": "Hello\u0000 world. Second."}),
        ("/api/credits/grant", {"amount": 5, "reason": "nul\u0000reason"}),
    ],
)
def test_a_nul_character_is_422_before_anything_is_charged(
    admin: httpx.Client, path: str, body: dict
) -> None:
    """Postgres text cannot hold NUL: such input is refused up front, not a 503."""
    envelope(admin.post(path, json=body), 422, "validation_error")
    recent = admin.get("/api/credits/balance").json()["recent_transactions"]
    assert [t["reason"] for t in recent] == ["start"]


def test_job_ids_must_be_canonical(admin: httpx.Client) -> None:
    """Upper case or undashed forms of a real id are not that job."""
    job_id = admin.post("/api/summarise", json={"text": "Canonical ids only."}).json()[
        "job_id"
    ]
    for variant in (job_id.upper(), job_id.replace("-", ""), f"%7B{job_id}%7D"):
        envelope(admin.get(f"/api/jobs/{variant}"), 404, "job_not_found")
    assert admin.get(f"/api/jobs/{job_id}").status_code == 200


def test_a_clients_grpc_timeout_never_becomes_the_services_deadline(
    admin: httpx.Client,
) -> None:
    """grpc-* headers are the gateway's own: a client's 1 ms deadline is dropped."""
    response = admin.post(
        "/api/analyse",
        json={"text": "deadline from outside"},
        headers={"grpc-timeout": "1m", "Idempotency-Key": "deadline"},
    )
    assert response.status_code == 200, response.text
    assert balance(admin) == 75


@pytest.mark.parametrize("size", [9000, 30000])
def test_headers_too_large_for_grpc_are_never_a_429(
    admin: httpx.Client, size: int
) -> None:
    """gRPC's own size limit is not the rate limit: served, or a malformed request."""
    response = admin.get("/api/me", headers={"x-pad": "x" * size})
    if response.status_code != 200:
        envelope(response, 400, "malformed_request")
