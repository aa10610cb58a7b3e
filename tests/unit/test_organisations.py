"""Which organisation a first login joins."""

from __future__ import annotations

import pytest

from tollgate_identity.domain.errors import LoginFailed
from tollgate_identity.domain.model import Identity, plan_organisation
from tollgate_identity.entrypoints.main import consumer_domains

CONSUMER = consumer_domains()


def identity(email: str, hd: str | None = None) -> Identity:
    """An identity with an address and an optional Google hosted domain."""
    return Identity("https://issuer", "sub", email, "Jane Doe", hd)


@pytest.mark.parametrize(
    ("email", "name", "slug"),
    [
        ("jane@company.com", "Company", "company-com"),
        ("jane@acme-eu.example", "Acme-eu", "acme-eu-example"),
        ("Jane@Sub.Example.ORG", "Sub", "sub-example-org"),
    ],
)
def test_a_company_domain_names_its_shared_organisation(
    email: str, name: str, slug: str
) -> None:
    """Name from the first label with a capital initial, slug from the domain."""
    plan = plan_organisation(identity(email), CONSUMER, provider_is_google=False)
    assert (plan.name, plan.slug, plan.domain) == (
        name,
        slug,
        email.split("@")[1].lower(),
    )


@pytest.mark.parametrize("domain", ["gmail.com", "outlook.com", "yahoo.com"])
def test_consumer_mailboxes_get_personal_organisations(domain: str) -> None:
    """Strangers never share an organisation because they share a provider."""
    one = plan_organisation(identity(f"a@{domain}"), CONSUMER, provider_is_google=False)
    two = plan_organisation(identity(f"b@{domain}"), CONSUMER, provider_is_google=False)
    assert one.domain is None and two.domain is None
    assert one.slug != two.slug


def test_google_accounts_without_hd_are_personal() -> None:
    """With Google, only the hd claim makes an account part of a company."""
    personal = plan_organisation(identity("jane@company.com"), CONSUMER, True)
    company = plan_organisation(
        identity("jane@company.com", "company.com"), CONSUMER, True
    )
    assert personal.domain is None
    assert company.domain == "company.com"


def test_the_consumer_list_is_data() -> None:
    """The list comes from the package's data file."""
    assert {"gmail.com", "outlook.com", "hotmail.com"} <= CONSUMER


@pytest.mark.parametrize(
    ("email", "domain"),
    [
        ("boss@company.example.", "company.example"),
        ("a@BÜCHER.example", "xn--bcher-kva.example"),
        ("a@xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_one_domain_has_one_spelling(email: str, domain: str) -> None:
    """A trailing dot or Unicode labels never found a twin organisation."""
    assert plan_organisation(identity(email), CONSUMER, False).domain == domain


def test_a_trailing_dot_does_not_escape_the_consumer_list() -> None:
    """gmail.com. is gmail.com: a personal organisation."""
    assert plan_organisation(identity("x@gmail.com."), CONSUMER, False).domain is None


@pytest.mark.parametrize(
    "email", ["a@b@victim.example", "@victim.example", "a@.example"]
)
def test_addresses_that_are_not_one_mailbox_are_refused(email: str) -> None:
    """They would join, or found, an organisation they have no claim to."""
    with pytest.raises(LoginFailed):
        plan_organisation(identity(email), CONSUMER, False)
