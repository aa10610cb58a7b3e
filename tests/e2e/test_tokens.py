"""Access tokens against the running platform: claims, keys, forgeries, rotation.

Forged tokens are sent through the gateway and straight to each service's gRPC port,
so that no service relies on the gateway to refuse them. Tokens that differ from a
good one in a single claim are signed with the stack's real key (read from its key
folder), so that it is the claim check that refuses them, not the signature.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from devclient import Person, login
from devstack import Stack

from tollgate.identity.v1 import identity_service_pb2 as identity_pb
from tollgate.identity.v1 import identity_service_pb2_grpc as identity_grpc
from tollgate.jobs.v1 import jobs_service_pb2 as jobs_pb
from tollgate.jobs.v1 import jobs_service_pb2_grpc as jobs_grpc
from tollgate.ledger.v1 import ledger_service_pb2 as ledger_pb
from tollgate.ledger.v1 import ledger_service_pb2_grpc as ledger_grpc

UNAUTHENTICATED = "authentication_required"


def key_folder(stack: Stack) -> Path:
    """Where the test stack's identity keeps its signing keys."""
    return Path(stack.environment("identity")["TOLLGATE_SIGNING_KEYS_DIR"])


def newest_key(stack: Stack) -> tuple[str, ec.EllipticCurvePrivateKey]:
    """The kid and private key identity signs with now."""
    path = sorted(key_folder(stack).glob("*.pem"))[-1]
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return path.stem, key


def claims_of(token: str) -> dict[str, Any]:
    """The claims of a token, unverified."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def b64(value: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWS, or an unsigned one if ``key`` is empty, built by hand."""
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    )
    if not key:
        return f"{signing_input}."
    mac = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    return f"{signing_input}.{b64(mac.sign(signing_input.encode(), key))}"


@pytest.fixture(scope="module")
def member_token(gateway: str, issuer: str) -> str:
    """A real token of the second user of a company, a member."""
    company = f"co-{uuid.uuid4().hex[:10]}.example"
    login(gateway, issuer, Person(uuid.uuid4().hex, f"ada@{company}", "Ada"))
    bob = login(gateway, issuer, Person(uuid.uuid4().hex, f"bob@{company}", "Bob"))
    return str(bob["access_token"])


def resign(stack: Stack, token: str, **changes: Any) -> str:
    """The token's claims with changes, signed with the stack's real key."""
    kid, key = newest_key(stack)
    claims = {**claims_of(token), **changes}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


def as_admin(token: str) -> dict[str, Any]:
    """The token's claims, promoted: what a forger would want."""
    return {**claims_of(token), "role": "admin"}


def kid_of(token: str) -> str:
    """The kid in a token's header."""
    return str(jwt.get_unverified_header(token)["kid"])


def public_pem(stack: Stack) -> bytes:
    """The signing key's public half as PEM, as an attacker could get it."""
    _, key = newest_key(stack)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_jwk(stack: Stack) -> bytes:
    """The signing key's entry of the public JWK Set, as JSON."""
    kid, _ = newest_key(stack)
    keys = httpx.get(jwks_url(stack)).json()["keys"]
    return json.dumps(next(key for key in keys if key["kid"] == kid)).encode()


def edited(stack: Stack, token: str) -> str:
    """The token with its payload promoted to admin and the signature kept."""
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(as_admin(token)).encode())}.{signature}"


def hours(n: int) -> int:
    """A Unix time ``n`` hours from now."""
    return int(time.time()) + 3600 * n


STRANGER = ec.generate_private_key(ec.SECP256R1())
Forger = Callable[[Stack, str], str]
FORGERIES: dict[str, Forger] = {
    "alg none": lambda s, t: hand_made(
        {"alg": "none", "kid": kid_of(t)}, as_admin(t), b""
    ),
    "HS256 keyed with the public PEM": lambda s, t: hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": kid_of(t)}, as_admin(t), public_pem(s)
    ),
    "HS256 keyed with the public JWK": lambda s, t: hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": kid_of(t)}, as_admin(t), public_jwk(s)
    ),
    "expired": lambda s, t: resign(s, t, iat=hours(-2), nbf=hours(-2), exp=hours(-1)),
    "not yet valid": lambda s, t: resign(s, t, nbf=hours(1)),
    "another audience": lambda s, t: resign(s, t, aud="another-api"),
    "another issuer": lambda s, t: resign(s, t, iss="https://evil.example"),
    "signed by a key not in the JWKS under a real kid": lambda s, t: jwt.encode(
        as_admin(t), STRANGER, algorithm="ES256", headers={"kid": kid_of(t)}
    ),
    "signed by a key not in the JWKS under a bogus kid": lambda s, t: jwt.encode(
        as_admin(t), STRANGER, algorithm="ES256", headers={"kid": uuid.uuid4().hex}
    ),
    "payload edited after signing": edited,
    "no kid": lambda s, t: jwt.encode(
        claims_of(t), newest_key(s)[1], algorithm="ES256"
    ),
    "garbage": lambda s, t: "not.a.token",
}
NAMES = sorted(FORGERIES)


def jwks_url(stack: Stack) -> str:
    """The public JWK Set."""
    return f"{stack.config.gateway_url}/.well-known/jwks.json"


ROUTES = {
    "identity": "/api/me",
    "ledger": "/api/credits/balance",
    "jobs": f"/api/jobs/{uuid.UUID(int=1)}",
}
GOOD_STATUS = {"identity": 200, "ledger": 200, "jobs": 404}


def get(stack: Stack, path: str, token: str | None) -> httpx.Response:
    """GET a path through the gateway with an optional bearer token."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{stack.config.gateway_url}{path}", headers=headers, timeout=15)


def assert_unauthenticated(response: httpx.Response) -> None:
    """401 with exactly the authentication_required envelope."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"detail"} and set(body["detail"]) == {"error", "message"}
    assert body["detail"]["error"] == UNAUTHENTICATED
    assert body["detail"]["message"]


def test_a_token_is_es256_with_a_published_kid_and_every_claim(
    running_stack: Stack, member_token: str
) -> None:
    """Header alg, kid and typ; claims iss, aud, sub, org, role, iat, nbf, exp, jti."""
    header = jwt.get_unverified_header(member_token)
    assert (header["alg"], header["typ"]) == ("ES256", "at+jwt")
    keys = {
        key["kid"]: key for key in httpx.get(jwks_url(running_stack)).json()["keys"]
    }
    assert header["kid"] in keys
    claims = jwt.decode(
        member_token,
        jwt.PyJWK(keys[header["kid"]]),
        algorithms=["ES256"],
        audience="tollgate-api",
        issuer="tollgate",
    )
    assert set(claims) == {
        "iss",
        "aud",
        "sub",
        "org",
        "role",
        "iat",
        "nbf",
        "exp",
        "jti",
    }
    assert claims["role"] == "member"
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60


async def test_the_jwk_set_is_the_same_over_http_and_grpc(running_stack: Stack) -> None:
    """GET /.well-known/jwks.json and IdentityService/GetJwks list the same keys."""
    over_http = httpx.get(jwks_url(running_stack)).json()["keys"]
    async with grpc.aio.insecure_channel(
        running_stack.config.grpc_target("identity")
    ) as channel:
        answer = await identity_grpc.IdentityServiceStub(channel).GetJwks(
            identity_pb.GetJwksRequest()
        )
    over_grpc = [
        {field.name: value for field, value in key.ListFields()} for key in answer.keys
    ]
    assert over_http == over_grpc
    for key in over_http:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "EC",
            "P-256",
            "ES256",
            "sig",
        )


def test_a_resigned_copy_of_a_good_token_is_accepted(
    running_stack: Stack, member_token: str
) -> None:
    """The forgeries below fail for what they change, not for being re-signed."""
    kid, key = newest_key(running_stack)
    copy = jwt.encode(
        claims_of(member_token), key, algorithm="ES256", headers={"kid": kid}
    )
    for service, path in ROUTES.items():
        assert get(running_stack, path, copy).status_code == GOOD_STATUS[service]


@pytest.mark.parametrize("service", sorted(ROUTES))
@pytest.mark.parametrize("name", NAMES)
def test_a_forged_token_is_refused_at_the_gateway(
    running_stack: Stack, member_token: str, name: str, service: str
) -> None:
    """401 authentication_required with the exact envelope, on every service."""
    forged = FORGERIES[name](running_stack, member_token)
    assert_unauthenticated(get(running_stack, ROUTES[service], forged))


@pytest.mark.parametrize("service", sorted(ROUTES))
def test_no_token_is_refused_at_the_gateway(running_stack: Stack, service: str) -> None:
    """Without Authorization the answer is the same 401."""
    assert_unauthenticated(get(running_stack, ROUTES[service], None))


@pytest.fixture
async def channels(running_stack: Stack) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A gRPC channel to each service's own port."""
    opened = {
        service: grpc.aio.insecure_channel(running_stack.config.grpc_target(service))
        for service in ROUTES
    }
    yield opened
    for channel in opened.values():
        await channel.close()


async def call(channels: dict[str, grpc.aio.Channel], service: str, token: str) -> Any:
    """The service's protected read RPC, straight over gRPC."""
    metadata = (("authorization", f"Bearer {token}"),)
    if service == "identity":
        stub = identity_grpc.IdentityServiceStub(channels[service])
        return await stub.GetMe(identity_pb.GetMeRequest(), metadata=metadata)
    if service == "ledger":
        stub = ledger_grpc.LedgerServiceStub(channels[service])
        return await stub.GetBalance(ledger_pb.GetBalanceRequest(), metadata=metadata)
    stub = jobs_grpc.JobsServiceStub(channels[service])
    request = jobs_pb.GetJobRequest(job_id=str(uuid.UUID(int=1)))
    return await stub.GetJob(request, metadata=metadata)


def trailers(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """The text trailing metadata of a failed call."""
    return {k: v for k, v in error.trailing_metadata() or () if isinstance(v, str)}


def assert_grpc_refused(
    error: grpc.aio.AioRpcError, code: grpc.StatusCode, status: int, public: str
) -> None:
    """The status code and the envelope the gateway would turn into the body."""
    assert error.code() is code, error.details()
    meta = trailers(error)
    assert meta["x-http-status"] == str(status)
    body = json.loads(meta["x-error-envelope"])
    assert set(body) == {"detail"} and set(body["detail"]) == {"error", "message"}
    assert body["detail"]["error"] == public


@pytest.mark.parametrize("service", sorted(ROUTES))
@pytest.mark.parametrize("name", NAMES)
async def test_a_forged_token_is_refused_by_the_service_itself(
    running_stack: Stack,
    member_token: str,
    channels: dict[str, grpc.aio.Channel],
    name: str,
    service: str,
) -> None:
    """Straight to the gRPC port: UNAUTHENTICATED with the 401 envelope."""
    forged = FORGERIES[name](running_stack, member_token)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(channels, service, forged)
    assert_grpc_refused(
        refused.value, grpc.StatusCode.UNAUTHENTICATED, 401, UNAUTHENTICATED
    )


async def test_a_good_token_works_straight_over_grpc(
    member_token: str, channels: dict[str, grpc.aio.Channel]
) -> None:
    """The control for the test above: the same calls with the real token."""
    me = await call(channels, "identity", member_token)
    assert me.user.role == "member"
    balance = await call(channels, "ledger", member_token)
    assert balance.organisation_id == me.user.organisation_id
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await call(channels, "jobs", member_token)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


def test_a_members_token_cannot_grant_at_the_gateway(
    running_stack: Stack, member_token: str
) -> None:
    """403 forbidden with the documented message."""
    response = httpx.post(
        f"{running_stack.config.gateway_url}/api/credits/grant",
        json={"amount": 5, "reason": "Me"},
        headers={"authorization": f"Bearer {member_token}"},
    )
    assert response.status_code == 403
    assert response.json() == {
        "detail": {
            "error": "forbidden",
            "message": "This action requires admin privileges.",
        }
    }


async def test_a_members_token_cannot_grant_over_grpc(
    member_token: str, channels: dict[str, grpc.aio.Channel]
) -> None:
    """The ledger checks the role itself: PERMISSION_DENIED with the 403 envelope."""
    stub = ledger_grpc.LedgerServiceStub(channels["ledger"])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Grant(
            ledger_pb.GrantRequest(amount=5, reason="Me"),
            metadata=(("authorization", f"Bearer {member_token}"),),
        )
    assert_grpc_refused(
        refused.value, grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"
    )


def rotate_keys(stack: Stack) -> dict[str, Any]:
    """Run the operator's rotate-keys command against the test stack's keys."""
    result = subprocess.run(
        [sys.executable, "-m", "tollgate_identity.entrypoints.cli", "rotate-keys"],
        env=stack.environment("identity"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_after_a_key_rotation_old_tokens_still_work_and_new_ones_use_the_new_key(
    running_stack: Stack, log_in, company: str
) -> None:
    """Rotate between two logins: both tokens work on identity, ledger and jobs."""
    before = log_in(f"ada@{company}")
    old_token = str(before.headers["authorization"]).removeprefix("Bearer ")
    assert before.get("/api/credits/balance").status_code == 200

    # A bogus kid makes ledger and jobs fetch the key set now, so that the new
    # key below appears well within any interval between two of their fetches.
    bogus = FORGERIES["signed by a key not in the JWKS under a bogus kid"]
    for path in ROUTES.values():
        assert_unauthenticated(
            get(running_stack, path, bogus(running_stack, old_token))
        )

    rotation = rotate_keys(running_stack)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    assert rotation["new_kid"] != old_kid
    assert old_kid in rotation["published_kids"]

    published = [
        key["kid"] for key in httpx.get(jwks_url(running_stack)).json()["keys"]
    ]
    assert published[0] == rotation["new_kid"] and old_kid in published
    for service, path in ROUTES.items():
        assert before.get(path).status_code == GOOD_STATUS[service], service

    after = log_in(f"bob@{company}")
    new_token = str(after.headers["authorization"]).removeprefix("Bearer ")
    assert jwt.get_unverified_header(new_token)["kid"] == rotation["new_kid"]
    # Ledger and jobs have never seen this kid: they fetch the set again at once.
    for service, path in ROUTES.items():
        assert after.get(path).status_code == GOOD_STATUS[service], service
    assert after.get("/api/me").json()["user"]["role"] == "member"
    granted = before.post(
        "/api/credits/grant", json={"amount": 10, "reason": "After rotation"}
    )
    assert granted.json()["balance"] == 10
