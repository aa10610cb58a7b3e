"""What identity sends to an OpenID Connect provider, and what it accepts back.

The development provider verifies neither PKCE nor the redirect URI, so these tests
put a strict fake provider behind an ``httpx.MockTransport``: it remembers each
authorization request, checks the token request against it the way a real provider
must (RFC 6749 §4.1.3, RFC 7636 §4.6) and records what it was sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from identity_fakes import MemoryDirectory

from tollgate_common.errors import DependencyUnavailable
from tollgate_identity.adapters.keys import KeyStore
from tollgate_identity.adapters.oidc import OidcProvider
from tollgate_identity.domain.errors import LoginFailed
from tollgate_identity.domain.model import Identity
from tollgate_identity.service_layer.login import Login, TokenPolicy

ISSUER = "https://idp.example"
CLIENT_ID, CLIENT_SECRET = "tollgate-client", "s3cret"
REDIRECT_URI = "https://tollgate.example/auth/callback"
PROVIDER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str | None) -> dict[str, Any]:
    """The public JWK of an RSA key, with ``kid`` if given."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "use": "sig", **({"kid": kid} if kid else {})}


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Grant:
    """What the provider remembers about an authorization code."""

    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]


@dataclass
class FakeProvider:
    """A strict OpenID provider speaking through a MockTransport."""

    keys: list[dict[str, Any]] = field(
        default_factory=lambda: [rsa_jwk(PROVIDER_KEY, "k1")]
    )
    signing_key: Any = PROVIDER_KEY
    signing_kid: str | None = "k1"
    algorithm: str = "RS256"
    discovery_issuer: str = ISSUER
    token_status: int | None = None
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[httpx.Request] = field(default_factory=list)
    jwks_fetches: int = 0
    id_token_changes: dict[str, Any] = field(default_factory=dict)

    def transport(self) -> httpx.MockTransport:
        """The transport identity's HTTP clients use."""
        return httpx.MockTransport(self.handle)

    def authorize(self, url: str, **claims: Any) -> str:
        """The user consents: a code for the request in ``url``."""
        query = {
            key: values[0] for key, values in parse_qs(urlsplit(url).query).items()
        }
        assert query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            query["redirect_uri"],
            query["code_challenge"],
            query["nonce"],
            {"email": "ada@company.example", "email_verified": True, **claims},
        )
        return code

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route a request to an endpoint."""
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": self.discovery_issuer,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                },
            )
        if path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(200, json={"keys": self.keys})
        if path == "/token":
            return self.token(request)
        return httpx.Response(404)

    def token(self, request: httpx.Request) -> httpx.Response:
        """The token endpoint, checking what a real provider checks."""
        self.token_requests.append(request)
        if self.token_status is not None:
            return httpx.Response(self.token_status, text="down")
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        grant = self.grants.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant.redirect_uri
            or s256(form.get("code_verifier", "")) != grant.challenge
        ):
            return httpx.Response(400, json={"error": "invalid_grant"})
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": CLIENT_ID,
            "sub": "provider-subject-1",
            "iat": now,
            "exp": now + 300,
            "nonce": grant.nonce,
            **grant.claims,
            **self.id_token_changes,
        }
        # A change may be a function of the moment of issue, for times.
        claims = {
            name: value() if callable(value) else value
            for name, value in claims.items()
            if value is not None
        }
        headers = {"kid": self.signing_kid} if self.signing_kid else {}
        id_token = jwt.encode(
            claims, self.signing_key, algorithm=self.algorithm, headers=headers
        )
        return httpx.Response(
            200,
            json={"access_token": "at", "token_type": "Bearer", "id_token": id_token},
        )


@pytest.fixture
def idp() -> FakeProvider:
    """A fresh fake provider."""
    return FakeProvider()


@pytest.fixture
def provider(idp: FakeProvider) -> OidcProvider:
    """Identity's provider adapter, talking to the fake."""
    return OidcProvider(
        ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, transport=idp.transport()
    )


@pytest.fixture
def login(provider: OidcProvider, tmp_path: Path) -> Login:
    """The login use case over the adapter, a memory directory and real keys."""
    keys = KeyStore(tmp_path)
    keys.ensure_key()
    return Login(
        provider=provider,
        directory=MemoryDirectory(),
        signer=keys,
        policy=TokenPolicy("tollgate", "tollgate-api", timedelta(minutes=15)),
        consumer_domains=frozenset({"gmail.com"}),
        attempt_lifetime=timedelta(minutes=10),
    )


def query(url: str) -> dict[str, list[str]]:
    """Every query parameter of a URL, with repetitions."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


async def test_the_authorization_request_is_a_pkce_s256_code_flow_request(
    login: Login,
) -> None:
    """Each parameter once: code, our client, the exact redirect URI, S256."""
    start = await login.start()
    url = urlsplit(start.authorization_url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{ISSUER}/authorize"
    params = query(start.authorization_url)
    assert set(params) == {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    }
    assert all(len(values) == 1 for values in params.values())
    assert params["response_type"] == ["code"]
    assert params["client_id"] == [CLIENT_ID]
    assert params["redirect_uri"] == [REDIRECT_URI]
    assert params["scope"] == ["openid email profile"]
    assert params["code_challenge_method"] == ["S256"]
    assert len(params["code_challenge"][0]) == 43
    assert len(params["state"][0]) >= 43 and len(params["nonce"][0]) >= 43
    assert params["state"] != params["nonce"]


async def test_every_start_has_fresh_secrets_and_keeps_the_verifier_at_home(
    login: Login,
) -> None:
    """New state, nonce, challenge and cookie each time; the verifier never leaves."""
    first, second = await login.start(), await login.start()
    one, two = query(first.authorization_url), query(second.authorization_url)
    for name in ("state", "nonce", "code_challenge"):
        assert one[name] != two[name]
    assert first.browser_secret != second.browser_secret
    directory = login._directory
    verifiers = [attempt.code_verifier for attempt in directory.attempts.values()]
    assert len(verifiers) == 2
    for verifier in verifiers:
        assert 43 <= len(verifier) <= 128
        assert verifier not in first.authorization_url + second.authorization_url
    # Only hashes of the state and of the cookie are stored.
    for attempt in directory.attempts.values():
        assert attempt.state_hash not in (one["state"][0], two["state"][0])


async def test_the_code_is_exchanged_with_the_matching_verifier_and_redirect_uri(
    login: Login, idp: FakeProvider
) -> None:
    """The token request carries what RFC 6749 §4.1.3 and RFC 7636 §4.5 ask."""
    start = await login.start()
    params = query(start.authorization_url)
    code = idp.authorize(start.authorization_url)
    issued = await login.complete(code, params["state"][0], "", start.browser_secret)
    assert issued.access_token and issued.expires_in == 900

    (request,) = idp.token_requests
    assert request.method == "POST"
    assert request.url == f"{ISSUER}/token"
    assert request.headers["content-type"].startswith(
        "application/x-www-form-urlencoded"
    )
    form = parse_qs(request.content.decode())
    assert set(form) == {"grant_type", "code", "redirect_uri", "code_verifier"}
    assert form["grant_type"] == ["authorization_code"]
    assert form["code"] == [code]
    assert form["redirect_uri"] == [REDIRECT_URI]
    assert s256(form["code_verifier"][0]) == params["code_challenge"][0]
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {basic}"


async def test_a_replayed_code_is_refused(login: Login, idp: FakeProvider) -> None:
    """The provider answers invalid_grant the second time: google_auth_failed."""
    start = await login.start()
    state = query(start.authorization_url)["state"][0]
    code = idp.authorize(start.authorization_url)
    await login.complete(code, state, "", start.browser_secret)

    again = await login.start()
    again_state = query(again.authorization_url)["state"][0]
    with pytest.raises(LoginFailed, match="did not accept the code"):
        await login.complete(code, again_state, "", again.browser_secret)


async def test_a_verifier_of_another_attempt_gets_no_token(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """A code is bound to its challenge: another verifier is invalid_grant."""
    url = await provider.authorization_url("state", "nonce", "v" * 64)
    code = idp.authorize(url)
    with pytest.raises(LoginFailed):
        await provider.identify(code, "w" * 64, "nonce")


async def issue(
    provider: OidcProvider, idp: FakeProvider, nonce: str = "nonce", **claims: Any
) -> tuple[Identity, bool]:
    """Run authorize and identify for ``claims`` and return what identify says."""
    url = await provider.authorization_url("state", nonce, "v" * 64)
    return await provider.identify(idp.authorize(url, **claims), "v" * 64, nonce)


async def test_a_good_id_token_gives_the_identity(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """Issuer, subject, e-mail, name and hosted domain, and e-mail verified."""
    identity, verified = await issue(provider, idp, name="Ada", hd="company.example")
    assert identity == Identity(
        ISSUER, "provider-subject-1", "ada@company.example", "Ada", "company.example"
    )
    assert verified is True


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://evil.example"}, "invalid"),
        ({"aud": "another-client"}, "invalid"),
        ({"exp": lambda: int(time.time()) - 31}, "invalid"),
        ({"iat": lambda: int(time.time()) + 120}, "invalid"),
        ({"exp": None}, "invalid"),
        ({"sub": None}, "invalid"),
        ({"nonce": "another-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": [CLIENT_ID, "another-client"]}, "another party"),
        ({"azp": "another-client"}, "another party"),
        ({"email": None}, "no e-mail"),
    ],
)
async def test_an_id_token_that_does_not_check_out_is_refused(
    provider: OidcProvider, idp: FakeProvider, changes: dict, reason: str
) -> None:
    """OIDC Core §3.1.3.7: issuer, audience, azp, times and nonce."""
    idp.id_token_changes = changes
    with pytest.raises(LoginFailed, match=reason):
        await issue(provider, idp)


async def test_thirty_seconds_of_clock_skew_are_forgiven(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """An ID token that expired 10 s ago, or is issued 10 s ahead, still passes."""
    now = int(time.time())
    idp.id_token_changes = {"exp": now - 10, "iat": now + 10}
    identity, _ = await issue(provider, idp)
    assert identity.subject == "provider-subject-1"


async def test_several_audiences_are_accepted_when_azp_names_us(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """OIDC Core §3.1.3.7 items 4 and 5."""
    idp.id_token_changes = {"aud": [CLIENT_ID, "other"], "azp": CLIENT_ID}
    identity, _ = await issue(provider, idp)
    assert identity.issuer == ISSUER


@pytest.mark.parametrize("value", [False, None, "true", 1])
async def test_only_a_true_email_verified_counts(
    provider: OidcProvider, idp: FakeProvider, value: object
) -> None:
    """Anything but JSON true is unverified."""
    _, verified = await issue(provider, idp, email_verified=value)
    assert verified is False


async def test_an_id_token_signed_by_another_key_is_refused(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """The signature must verify with the provider's published key."""
    idp.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(LoginFailed, match="invalid"):
        await issue(provider, idp)


async def test_an_unsigned_id_token_is_refused(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """alg none never passes."""
    idp.algorithm, idp.signing_key = "none", None
    with pytest.raises(LoginFailed):
        await issue(provider, idp)


async def test_an_hs256_id_token_keyed_with_the_public_key_is_refused(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """The provider's public key as an HMAC secret forges nothing (RFC 8725 §2.1)."""
    public_pem = PROVIDER_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    idp.algorithm = "HS256"
    idp.signing_key = public_pem.decode()

    def hs256_token(request: httpx.Request) -> httpx.Response:
        """The token endpoint, signing by hand: PyJWT refuses a PEM HMAC key."""
        response = FakeProvider.token(idp, request)
        claims = jwt.decode(
            response.json()["id_token"], options={"verify_signature": False}
        )
        header = {"alg": "HS256", "kid": "k1"}
        mac = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)

        def part(value: object) -> bytes:
            raw = json.dumps(value).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=")

        signing_input = part(header) + b"." + part(claims)
        signature = mac.sign(signing_input, public_pem)
        token = signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")
        return httpx.Response(200, json={"id_token": token.decode()})

    idp.algorithm, idp.signing_key = "RS256", PROVIDER_KEY
    idp.token = hs256_token  # type: ignore[method-assign]
    with pytest.raises(LoginFailed, match="invalid"):
        await issue(provider, idp)


async def test_an_es256_id_token_verifies_with_an_ec_key(idp: FakeProvider) -> None:
    """ES256 is the other algorithm accepted for ID tokens."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    idp.keys = [{**public, "kid": "ec1"}]
    idp.signing_key, idp.signing_kid, idp.algorithm = key, "ec1", "ES256"
    provider = OidcProvider(
        ISSUER, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, transport=idp.transport()
    )
    identity, _ = await issue(provider, idp)
    assert identity.subject == "provider-subject-1"


async def test_the_jwks_is_cached_and_fetched_again_for_a_new_kid(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """One fetch for many logins; the provider's rotation is picked up at once."""
    await issue(provider, idp)
    await issue(provider, idp)
    assert idp.jwks_fetches == 1

    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.keys = [rsa_jwk(new_key, "k2"), rsa_jwk(PROVIDER_KEY, "k1")]
    idp.signing_key, idp.signing_kid = new_key, "k2"
    identity, _ = await issue(provider, idp)
    assert identity.subject == "provider-subject-1"
    assert idp.jwks_fetches == 2


async def test_without_a_kid_the_only_published_key_is_used(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """Like the development provider: no kid in the token, one key in the set."""
    idp.keys, idp.signing_kid = [rsa_jwk(PROVIDER_KEY, "k1")], None
    identity, _ = await issue(provider, idp)
    assert identity.subject == "provider-subject-1"


async def test_without_a_kid_and_with_several_keys_nothing_is_guessed(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """Two keys and no kid: refused rather than tried one after another."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    idp.keys = [rsa_jwk(other, "k0"), rsa_jwk(PROVIDER_KEY, "k1")]
    idp.signing_kid = None
    with pytest.raises(LoginFailed, match="unknown key"):
        await issue(provider, idp)


async def test_a_discovery_document_of_another_issuer_is_refused(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """OpenID Connect Discovery §4.3: the issuer must be the one asked."""
    idp.discovery_issuer = "https://evil.example"
    with pytest.raises(LoginFailed, match="another issuer"):
        await provider.authorization_url("s", "n", "v" * 64)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_provider_that_fails_is_unavailable_not_a_bad_login(
    provider: OidcProvider, idp: FakeProvider, status: int
) -> None:
    """5xx at the token endpoint is 503 service_unavailable."""
    url = await provider.authorization_url("s", "n", "v" * 64)
    code = idp.authorize(url)
    idp.token_status = status
    with pytest.raises(DependencyUnavailable):
        await provider.identify(code, "v" * 64, "n")


async def test_an_unreachable_provider_is_unavailable() -> None:
    """A connection error is 503 service_unavailable."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    provider = OidcProvider(
        ISSUER,
        CLIENT_ID,
        CLIENT_SECRET,
        REDIRECT_URI,
        transport=httpx.MockTransport(refuse),
    )
    with pytest.raises(DependencyUnavailable):
        await provider.authorization_url("s", "n", "v" * 64)


async def test_a_token_response_without_an_id_token_is_refused(
    provider: OidcProvider, idp: FakeProvider
) -> None:
    """An OAuth-only answer is no OpenID Connect login."""

    def no_id_token(request: httpx.Request) -> httpx.Response:
        """A token endpoint that forgets the ID token."""
        return httpx.Response(200, json={"access_token": "at", "token_type": "Bearer"})

    idp.token = no_id_token  # type: ignore[method-assign]
    with pytest.raises(LoginFailed, match="no ID token"):
        await issue(provider, idp)
