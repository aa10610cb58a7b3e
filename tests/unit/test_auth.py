"""The shared token verifier and its key cache, with no service around them."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tollgate_common.auth import JwksCache, TokenVerifier, bearer_token
from tollgate_common.errors import AuthenticationRequired, DependencyUnavailable

KEY = ec.generate_private_key(ec.SECP256R1())
KID = "key-1"
ISSUER, AUDIENCE = "tollgate", "tollgate-api"


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, str]:
    """The published form of a key."""
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {**public, "kid": kid, "alg": "ES256", "use": "sig"}


def claims(**changes: object) -> dict[str, object]:
    """The claims identity puts in an access token, with changes."""
    now = int(time.time())
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "org": str(uuid.uuid4()),
        "role": "member",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def sign(key=KEY, kid: str | None = KID, alg: str = "ES256", **changes) -> str:
    """A token of ``claims(**changes)``."""
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**changes), key, algorithm=alg, headers=headers)


class Fetcher:
    """A JWK Set source that counts its fetches and can be changed or broken."""

    def __init__(self, *jwks: dict[str, str]) -> None:
        self.jwks = list(jwks)
        self.calls = 0
        self.down = False

    async def __call__(self) -> list[dict[str, str]]:
        """The current set."""
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.down:
            raise ConnectionError("identity is down")
        return list(self.jwks)


def verifier(fetcher: Fetcher, **cache: float) -> TokenVerifier:
    """A verifier of our issuer and audience over ``fetcher``."""
    return TokenVerifier(JwksCache(fetcher, **cache), ISSUER, AUDIENCE)


def unsigned(header: dict[str, object], payload: dict[str, object]) -> str:
    """A JWS with the given parts and an empty signature."""

    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(payload)}."


async def test_a_good_token_gives_the_user_organisation_and_role() -> None:
    """The principal is what the verified claims say."""
    token_claims = claims(role="admin")
    token = jwt.encode(token_claims, KEY, algorithm="ES256", headers={"kid": KID})
    principal = await verifier(Fetcher(public_jwk(KEY, KID))).verify(token)
    assert principal.user_id == uuid.UUID(str(token_claims["sub"]))
    assert principal.organisation_id == uuid.UUID(str(token_claims["org"]))
    assert principal.role == "admin" and principal.is_admin
    assert principal.token == token


def forgeries() -> dict[str, str]:
    """Tokens that must all be refused, by what is wrong with them."""
    public_pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_json = json.dumps(public_jwk(KEY, KID)).encode()
    good = sign()
    header, payload, signature = good.split(".")
    edited = json.loads(base64.urlsafe_b64decode(payload + "=="))
    edited["role"] = "admin"
    edited_part = base64.urlsafe_b64encode(json.dumps(edited).encode()).rstrip(b"=")
    hmac = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256)
    return {
        "alg none": unsigned({"alg": "none", "kid": KID}, claims()),
        "alg none without kid": unsigned({"alg": "none"}, claims()),
        "HS256 keyed with the public PEM": _hs256(hmac, public_pem),
        "HS256 keyed with the public JWK": _hs256(hmac, public_json),
        "expired beyond the leeway": sign(exp=int(time.time()) - 31),
        "not yet valid": sign(nbf=int(time.time()) + 120),
        "issued in the future": sign(iat=int(time.time()) + 120),
        "another audience": sign(aud="another-api"),
        "audience list with ours in it": sign(aud=[AUDIENCE, "another-api"]),
        "another issuer": sign(iss="https://evil.example"),
        "a key outside the set under a known kid": sign(
            ec.generate_private_key(ec.SECP256R1())
        ),
        "a bogus kid": sign(ec.generate_private_key(ec.SECP256R1()), kid="bogus"),
        "no kid": sign(kid=None),
        "payload edited after signing": f"{header}.{edited_part.decode()}.{signature}",
        "signature cut off": f"{header}.{payload}.",
        "no organisation": sign(org=None),
        "no jti": sign(jti=None),
        "no expiry": sign(exp=None),
        "a role nobody has": sign(role="owner"),
        "a subject that is no user id": sign(sub="alice"),
        "an unknown critical header": jwt.encode(
            claims(), KEY, algorithm="ES256", headers={"kid": KID, "crit": ["exp2"]}
        ),
        "not a JWT": "not-a-token",
    }


def _hs256(hmac: jwt.algorithms.HMACAlgorithm, secret: bytes) -> str:
    """An HS256 token keyed with ``secret``, built by hand: PyJWT refuses to."""
    header = {"alg": "HS256", "typ": "JWT", "kid": KID}

    def part(value: object) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signing_input = part(header) + b"." + part(claims(role="admin"))
    signature = base64.urlsafe_b64encode(hmac.sign(signing_input, secret)).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


@pytest.mark.parametrize("name", sorted(forgeries()))
async def test_a_forged_or_stale_token_is_refused(name: str) -> None:
    """Each of these is AuthenticationRequired, never a principal."""
    forged = forgeries()[name]
    check = verifier(Fetcher(public_jwk(KEY, KID)), min_refresh_seconds=0)
    with pytest.raises(AuthenticationRequired):
        await check.verify(forged)


async def test_a_token_expired_within_the_leeway_still_verifies() -> None:
    """30 s of clock skew are forgiven."""
    token = sign(exp=int(time.time()) - 10)
    assert (await verifier(Fetcher(public_jwk(KEY, KID))).verify(token)).role


async def test_keys_that_are_no_es256_keys_are_never_used() -> None:
    """RSA, symmetric, encryption and malformed keys are skipped, the rest kept."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    fetcher = Fetcher(
        {**rsa_jwk, "kid": "rsa", "alg": "RS256"},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "oct"},
        {**public_jwk(KEY, "enc"), "use": "enc"},
        {"kty": "EC", "crv": "P-256", "x": "broken", "y": "broken", "kid": "bad"},
        {"kty": "EC", "crv": "P-256", "x": "!!", "y": None, "kid": "junk"},
        "not a key",  # type: ignore[arg-type]
        public_jwk(KEY, KID),
    )
    cache = JwksCache(fetcher, min_refresh_seconds=0)
    assert await cache.key(KID) is not None
    for kid in ("rsa", "oct", "enc", "bad", "junk"):
        assert await cache.key(kid) is None
    rsa_token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa"})
    with pytest.raises(AuthenticationRequired):
        await TokenVerifier(cache, ISSUER, AUDIENCE).verify(rsa_token)


async def test_a_flood_of_bogus_kids_costs_one_fetch_per_interval() -> None:
    """Two hundred tokens with random kids, at once: one fetch, not two hundred."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    check = verifier(fetcher, min_refresh_seconds=0.3)
    await check.verify(sign())
    assert fetcher.calls == 1

    other = ec.generate_private_key(ec.SECP256R1())
    tokens = [sign(other, kid=uuid.uuid4().hex) for _ in range(200)]
    started = time.monotonic()
    results = await asyncio.gather(
        *(check.verify(token) for token in tokens), return_exceptions=True
    )
    assert all(isinstance(result, AuthenticationRequired) for result in results)
    assert fetcher.calls == 2
    # Each bogus token waited for the next allowed fetch, and no longer.
    assert time.monotonic() - started < 1.0


async def test_a_new_kid_right_after_a_fetch_is_found_without_a_refusal() -> None:
    """The first token of a key made after the last fetch waits for one, then passes."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    check = verifier(fetcher, min_refresh_seconds=0.3)
    await check.verify(sign())

    new_key = ec.generate_private_key(ec.SECP256R1())
    fetcher.jwks.append(public_jwk(new_key, "key-2"))
    started = time.monotonic()
    principal = await check.verify(sign(new_key, kid="key-2"))
    assert principal.role == "member"
    assert fetcher.calls == 2
    assert 0.2 < time.monotonic() - started < 1.0
    await check.verify(sign())
    assert fetcher.calls == 2


async def test_a_known_kid_needs_no_fetch() -> None:
    """Verification is local: many tokens of a known key, one fetch."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    check = verifier(fetcher)
    for _ in range(100):
        await check.verify(sign())
    assert fetcher.calls == 1


async def test_a_key_withdrawn_from_the_set_stops_verifying_after_max_age() -> None:
    """A stale set is fetched again in the background and the old key dropped."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    check = verifier(fetcher, min_refresh_seconds=0, max_age_seconds=0.1)
    await check.verify(sign())
    fetcher.jwks = []
    await asyncio.sleep(0.15)
    await check.verify(sign())
    await asyncio.sleep(0.05)
    with pytest.raises(AuthenticationRequired):
        await check.verify(sign())


async def test_an_unreachable_key_source_is_unavailable_not_unauthenticated() -> None:
    """With no keys and identity down, the caller is told to retry (503)."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    fetcher.down = True
    with pytest.raises(DependencyUnavailable):
        await verifier(fetcher, min_refresh_seconds=0).verify(sign())


async def test_known_keys_keep_working_while_the_source_is_down() -> None:
    """A failed fetch keeps the old set."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    check = verifier(fetcher, min_refresh_seconds=0)
    await check.verify(sign())
    fetcher.down = True
    with pytest.raises(DependencyUnavailable):
        await check.verify(sign(kid="unknown"))
    assert (await check.verify(sign())).role == "member"


async def test_a_waiting_caller_that_gives_up_does_not_cancel_the_fetch() -> None:
    """The shared fetch outlives a cancelled request."""
    fetcher = Fetcher(public_jwk(KEY, KID))
    cache = JwksCache(fetcher)
    waiting = asyncio.ensure_future(cache.key(KID))
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.sleep(0.05)
    assert fetcher.calls == 1
    assert await cache.key(KID) is not None
    assert fetcher.calls == 1


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        ("Basic abc", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
    ],
)
def test_only_a_bearer_authorization_carries_a_token(header, token) -> None:
    """RFC 6750 §2.1, case-insensitive scheme."""
    assert bearer_token(header) == token
