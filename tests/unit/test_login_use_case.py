"""The login use case on fakes: state, browser binding, failures and the token."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from identity_fakes import MemoryDirectory, StubProvider

from tollgate_common.errors import DependencyUnavailable
from tollgate_identity.adapters.keys import KeyStore
from tollgate_identity.domain.errors import LoginFailed
from tollgate_identity.service_layer.login import Login, LoginStart, TokenPolicy


@pytest.fixture
def provider() -> StubProvider:
    """A provider that vouches for Ada."""
    return StubProvider()


@pytest.fixture
def directory() -> MemoryDirectory:
    """An empty directory."""
    return MemoryDirectory()


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    """A key folder with one key."""
    store = KeyStore(tmp_path)
    store.ensure_key()
    return store


@pytest.fixture
def login(provider: StubProvider, directory: MemoryDirectory, keys: KeyStore) -> Login:
    """The use case on the fakes, tokens living 20 minutes."""
    return Login(
        provider=provider,
        directory=directory,
        signer=keys,
        policy=TokenPolicy("tollgate", "tollgate-api", timedelta(minutes=20)),
        consumer_domains=frozenset({"gmail.com"}),
        attempt_lifetime=timedelta(minutes=10),
    )


def state_of(start: LoginStart) -> str:
    """The state in the authorization URL."""
    return parse_qs(urlsplit(start.authorization_url).query)["state"][0]


async def test_a_complete_login_issues_an_access_token_with_every_claim(
    login: Login, keys: KeyStore
) -> None:
    """iss, aud, sub, org, role, iat, nbf, exp, jti; ES256 with the key's kid."""
    start = await login.start()
    issued = await login.complete("code", state_of(start), "", start.browser_secret)
    assert issued.expires_in == 1200

    (jwk,) = keys.jwks()
    header = jwt.get_unverified_header(issued.access_token)
    assert (header["alg"], header["kid"], header["typ"]) == (
        "ES256",
        jwk["kid"],
        "at+jwt",
    )
    claims = jwt.decode(
        issued.access_token,
        jwt.PyJWK(jwk),
        algorithms=["ES256"],
        audience="tollgate-api",
        issuer="tollgate",
    )
    names = {"iss", "aud", "sub", "org", "role", "iat", "nbf", "exp", "jti"}
    assert set(claims) == names
    assert claims["role"] == "admin"
    assert str(uuid.UUID(claims["sub"])) == claims["sub"]
    assert str(uuid.UUID(claims["org"])) == claims["org"]
    assert claims["exp"] - claims["iat"] == 1200
    assert claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - datetime.now(UTC).timestamp()) < 5


async def test_every_token_has_its_own_jti(login: Login) -> None:
    """Two logins of one person: two token ids, one user."""
    tokens = []
    for _ in range(2):
        start = await login.start()
        tokens.append(
            await login.complete("code", state_of(start), "", start.browser_secret)
        )
    first, second = (
        jwt.decode(token.access_token, options={"verify_signature": False})
        for token in tokens
    )
    assert first["jti"] != second["jti"]
    assert first["sub"] == second["sub"]


async def test_the_code_verifier_and_nonce_of_the_attempt_reach_the_provider(
    login: Login, provider: StubProvider, directory: MemoryDirectory
) -> None:
    """identify gets the stored verifier and nonce, not anything from the callback."""
    start = await login.start()
    (attempt,) = directory.attempts.values()
    await login.complete("the-code", state_of(start), "", start.browser_secret)
    assert provider.exchanges == [("the-code", attempt.code_verifier, attempt.nonce)]


async def test_a_state_works_once(login: Login) -> None:
    """The second callback with the same state and cookie is refused."""
    start = await login.start()
    await login.complete("code", state_of(start), "", start.browser_secret)
    with pytest.raises(LoginFailed, match="unknown, used"):
        await login.complete("code", state_of(start), "", start.browser_secret)


async def test_a_state_from_another_browser_is_refused_and_left_for_its_owner(
    login: Login, provider: StubProvider
) -> None:
    """Without the cookie, or with another login's cookie, nothing is exchanged."""
    start = await login.start()
    other = await login.start()
    with pytest.raises(LoginFailed, match="browser"):
        await login.complete("code", state_of(start), "", None)
    with pytest.raises(LoginFailed, match="browser"):
        await login.complete("code", state_of(start), "", other.browser_secret)
    assert provider.exchanges == []
    issued = await login.complete("code", state_of(start), "", start.browser_secret)
    assert issued.access_token


async def test_an_expired_attempt_is_refused(
    login: Login, directory: MemoryDirectory
) -> None:
    """A state older than the attempt lifetime no longer works."""
    start = await login.start()
    (key,) = directory.attempts
    directory.attempts[key] = dataclasses.replace(
        directory.attempts[key], expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    with pytest.raises(LoginFailed, match="expired"):
        await login.complete("code", state_of(start), "", start.browser_secret)


@pytest.mark.parametrize(
    ("code", "state"), [("", "state"), ("code", ""), ("", "")], ids=str
)
async def test_a_callback_without_code_or_state_is_refused(
    login: Login, code: str, state: str
) -> None:
    """Both are needed."""
    start = await login.start()
    with pytest.raises(LoginFailed, match="no code or no state"):
        await login.complete(code, state, "", start.browser_secret)


async def test_a_provider_error_is_refused_and_named_if_it_is_a_code(
    login: Login,
) -> None:
    """error=access_denied (the user said no) comes back without a state."""
    with pytest.raises(LoginFailed, match="access_denied"):
        await login.complete("", "", "access_denied", None)
    with pytest.raises(LoginFailed) as failed:
        await login.complete("", "", "<script>alert(1)</script>", None)
    assert "<script>" not in failed.value.message


async def test_an_unverified_email_creates_nobody(
    login: Login, provider: StubProvider, directory: MemoryDirectory
) -> None:
    """email_verified false: google_auth_failed and no user."""
    provider.verified = False
    start = await login.start()
    with pytest.raises(LoginFailed, match="not verified"):
        await login.complete("code", state_of(start), "", start.browser_secret)
    assert directory.registered == [] and directory.users == {}


async def test_an_unexpected_provider_failure_is_a_failed_login_and_creates_nobody(
    login: Login, provider: StubProvider, directory: MemoryDirectory
) -> None:
    """Whatever goes wrong in the exchange, the answer is 400, not 500."""
    provider.failure = KeyError("id_token")
    start = await login.start()
    with pytest.raises(LoginFailed):
        await login.complete("code", state_of(start), "", start.browser_secret)
    assert directory.registered == []


async def test_an_unreachable_provider_stays_unavailable(
    login: Login, provider: StubProvider
) -> None:
    """DependencyUnavailable is not turned into a failed login."""
    provider.failure = DependencyUnavailable("down")
    start = await login.start()
    with pytest.raises(DependencyUnavailable):
        await login.complete("code", state_of(start), "", start.browser_secret)


async def test_a_returning_user_is_not_registered_again(
    login: Login, directory: MemoryDirectory
) -> None:
    """The second login finds the user by issuer and subject."""
    for _ in range(2):
        start = await login.start()
        await login.complete("code", state_of(start), "", start.browser_secret)
    assert len(directory.registered) == 1


async def test_a_second_account_with_the_same_email_is_its_own_user(
    login: Login, provider: StubProvider, directory: MemoryDirectory
) -> None:
    """Same address, another subject: a new user, member of the domain's org."""
    start = await login.start()
    first = await login.complete("code", state_of(start), "", start.browser_secret)
    provider.identity = dataclasses.replace(provider.identity, subject="subject-2")
    start = await login.start()
    second = await login.complete("code", state_of(start), "", start.browser_secret)
    one, two = (
        jwt.decode(token.access_token, options={"verify_signature": False})
        for token in (first, second)
    )
    assert one["sub"] != two["sub"]
    assert one["org"] == two["org"]
    assert (one["role"], two["role"]) == ("admin", "member")


async def test_an_unreachable_provider_at_start_is_unavailable(
    login: Login, provider: StubProvider
) -> None:
    """Start fails with 503 and stores no attempt."""

    async def down(state: str, nonce: str, code_verifier: str) -> str:
        raise OSError("no route")

    provider.authorization_url = down  # type: ignore[method-assign]
    with pytest.raises(DependencyUnavailable):
        await login.start()


async def test_with_google_the_hosted_domain_decides_the_organisation(
    login: Login, provider: StubProvider, directory: MemoryDirectory
) -> None:
    """hd joins the Workspace's organisation; no hd is a personal one."""
    provider.is_google = True
    provider.identity = dataclasses.replace(
        provider.identity, email="ada@alias.example", hosted_domain="company.example"
    )
    start = await login.start()
    await login.complete("code", state_of(start), "", start.browser_secret)
    assert set(directory.organisations) == {"company.example"}

    provider.identity = dataclasses.replace(
        provider.identity, subject="subject-2", hosted_domain=None
    )
    start = await login.start()
    issued = await login.complete("code", state_of(start), "", start.browser_secret)
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["role"] == "admin"
    assert set(directory.organisations) == {"company.example"}
