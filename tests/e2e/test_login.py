"""Login through the gateway and the development provider, every way it can fail.

Each failure of the callback must be 400 ``google_auth_failed`` with the one error
envelope, never a 500, and must leave no user behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from devclient import Person, login, register


@pytest.fixture
def browser(gateway: str) -> Iterator[httpx.Client]:
    """A browser: keeps cookies, follows no redirects."""
    with httpx.Client(base_url=gateway, follow_redirects=False, timeout=15) as client:
        yield client


def someone(email: str, **claims: object) -> Person:
    """A new account at the provider."""
    return Person(sub=uuid.uuid4().hex, email=email, name="Someone", **claims)


def consent(browser: httpx.Client, issuer: str, person: Person) -> str:
    """Start a login and consent as ``person``; the callback URL the provider sends."""
    register(issuer, person)
    start = browser.get("/auth/google")
    assert start.status_code == 302, start.text
    given = browser.post(start.headers["location"], data={"sub": person.sub})
    assert given.status_code == 302, given.text
    return given.headers["location"]


def assert_login_failed(response: httpx.Response) -> None:
    """400 with exactly the google_auth_failed envelope."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert set(body["detail"]) == {"error", "message"}
    assert body["detail"]["error"] == "google_auth_failed"
    assert body["detail"]["message"]


def me(gateway: str, token: dict) -> dict:
    """GET /api/me with a token response."""
    response = httpx.get(
        f"{gateway}/api/me",
        headers={"authorization": f"Bearer {token['access_token']}"},
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_redirect_is_a_complete_code_flow_request(
    browser: httpx.Client, running_stack
) -> None:
    """Exact redirect URI, our client id, S256 and a cookie that only /auth sees."""
    response = browser.get("/auth/google")
    assert response.status_code == 302
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith(running_stack.config.oidc_issuer)
    params = dict(location.params)
    assert params["redirect_uri"] == f"{running_stack.config.gateway_url}/auth/callback"
    assert params["client_id"] == "tollgate-dev"
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    assert "code_verifier" not in params
    assert response.headers["cache-control"] == "no-store"
    cookie = response.headers["set-cookie"]
    for attribute in ("Path=/auth", "HttpOnly", "SameSite=Lax", "Max-Age=600"):
        assert attribute in cookie


def test_a_successful_callback_answers_a_bearer_token_and_clears_the_cookie(
    browser: httpx.Client, issuer: str, company: str
) -> None:
    """200 with access_token, token_type and expires_in; the login cookie expires."""
    callback = browser.get(consent(browser, issuer, someone(f"ada@{company}")))
    assert callback.status_code == 200, callback.text
    body = callback.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert callback.headers["cache-control"] == "no-store"
    assert "Max-Age=0" in callback.headers["set-cookie"]
    assert callback.headers["set-cookie"].count("Max-Age") == 1  # so it is deleted


def test_a_replayed_callback_is_refused(
    browser: httpx.Client, issuer: str, company: str
) -> None:
    """The same code and state a second time: the state is used up."""
    url = consent(browser, issuer, someone(f"ada@{company}"))
    assert browser.get(url).status_code == 200
    assert_login_failed(browser.get(url))


def test_a_replayed_code_with_a_fresh_state_is_refused(
    browser: httpx.Client, issuer: str, company: str
) -> None:
    """The provider will not exchange a code twice."""
    person = someone(f"ada@{company}")
    used = httpx.URL(consent(browser, issuer, person))
    assert browser.get(str(used)).status_code == 200
    fresh = httpx.URL(consent(browser, issuer, person))
    forged = fresh.copy_set_param("code", used.params["code"])
    assert_login_failed(browser.get(str(forged)))


def test_a_callback_in_another_browser_is_refused_and_the_owner_can_finish(
    browser: httpx.Client, gateway: str, issuer: str, company: str
) -> None:
    """Without the login cookie, or with someone else's, the state is not taken."""
    url = consent(browser, issuer, someone(f"ada@{company}"))
    with httpx.Client(base_url=gateway, timeout=15) as stranger:
        assert_login_failed(stranger.get(url))
        stranger.get("/auth/google")
        assert_login_failed(stranger.get(url))
    assert browser.get(url).status_code == 200


def test_a_denied_consent_is_refused(browser: httpx.Client, issuer: str) -> None:
    """The provider sends error=access_denied and no state."""
    person = someone("ada@gmail.com")
    register(issuer, person)
    start = browser.get("/auth/google")
    denied = browser.post(start.headers["location"], data={"action": "deny"})
    assert denied.status_code == 302
    location = httpx.URL(denied.headers["location"])
    assert location.params["error"] == "access_denied"
    assert "state" not in location.params
    assert_login_failed(browser.get(str(location)))


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?code=abc",
        "?state=abc",
        "?code=abc&state=abc",
        "?code=&state=",
        "?error=server_error&state=abc",
        "?error=%3Cscript%3E",
        f"?code=abc&state={'x' * 3000}",
        "?code=%00&state=%C3%A9t%C3%A9",
        "?code=%ff&state=abc",
    ],
)
def test_a_made_up_callback_is_refused_never_an_error_of_ours(
    browser: httpx.Client, query: str
) -> None:
    """Junk in the query is 400 google_auth_failed, not 500."""
    browser.get("/auth/google")
    assert_login_failed(browser.get(f"/auth/callback{query}"))


def test_an_unverified_email_creates_neither_user_nor_organisation(
    browser: httpx.Client, gateway: str, issuer: str, company: str
) -> None:
    """The account's later, verified login is its first: a fresh user and org."""
    person = someone(f"eve@{company}", email_verified=False)
    assert_login_failed(browser.get(consent(browser, issuer, person)))

    other_company = f"other-{company}"
    verified = Person(person.sub, f"eve@{other_company}", "Eve")
    profile = me(gateway, login(gateway, issuer, verified))
    assert profile["user"]["email"] == f"eve@{other_company}"
    assert profile["organisation"]["slug"] == other_company.replace(".", "-")
    first_of_company = me(gateway, login(gateway, issuer, someone(f"bob@{company}")))
    assert first_of_company["user"]["role"] == "admin"


def test_a_second_account_with_the_same_email_is_a_member_of_its_own(
    gateway: str, issuer: str, company: str
) -> None:
    """Users are keyed on issuer and subject, never on the address alone."""
    email = f"ada@{company}"
    first = me(gateway, login(gateway, issuer, someone(email)))
    second = me(gateway, login(gateway, issuer, someone(email)))
    assert first["user"]["id"] != second["user"]["id"]
    assert first["organisation"]["id"] == second["organisation"]["id"]
    assert (first["user"]["role"], second["user"]["role"]) == ("admin", "member")
    again = me(gateway, login(gateway, issuer, Person(uuid.uuid4().hex, email, "A")))
    assert again["user"]["id"] not in (first["user"]["id"], second["user"]["id"])


def test_ten_racing_first_logins_of_a_company_make_exactly_one_admin(
    gateway: str, issuer: str, company: str
) -> None:
    """Ten colleagues log in at once: one organisation, one admin."""
    people = [someone(f"user{n}@{company}") for n in range(10)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        tokens = list(pool.map(lambda p: login(gateway, issuer, p), people))
    profiles = [me(gateway, token) for token in tokens]
    assert len({p["organisation"]["id"] for p in profiles}) == 1
    roles = sorted(p["user"]["role"] for p in profiles)
    assert roles == ["admin"] + ["member"] * 9


@pytest.mark.parametrize("domain", ["gmail.com", "outlook.com", "hotmail.com"])
def test_strangers_at_a_mailbox_provider_never_share_an_organisation(
    gateway: str, issuer: str, domain: str
) -> None:
    """Two consumer-domain logins racing: two personal organisations, two admins."""
    people = [someone(f"{uuid.uuid4().hex[:8]}@{domain}") for _ in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        tokens = list(pool.map(lambda p: login(gateway, issuer, p), people))
    first, second = (me(gateway, token) for token in tokens)
    assert first["organisation"]["id"] != second["organisation"]["id"]
    assert first["user"]["role"] == second["user"]["role"] == "admin"
    assert first["organisation"]["slug"].startswith("personal-")


def test_a_returning_user_keeps_their_identity_and_role(
    gateway: str, issuer: str, company: str
) -> None:
    """The second login of an account is the same user in the same organisation."""
    person = someone(f"ada@{company}")
    first = me(gateway, login(gateway, issuer, person))
    again = me(gateway, login(gateway, issuer, person))
    assert again["user"] == first["user"]
