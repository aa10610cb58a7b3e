"""Users, organisations and the rule that places a new user in one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tollgate_identity.domain.errors import LoginFailed


class Role(StrEnum):
    """What a user may do in their organisation."""

    ADMIN = "admin"
    MEMBER = "member"


@dataclass(frozen=True, slots=True)
class Organisation:
    """A tenant."""

    id: uuid.UUID
    name: str
    slug: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A person, identified by their provider's issuer and subject."""

    id: uuid.UUID
    issuer: str
    subject: str
    email: str
    name: str
    role: Role
    organisation_id: uuid.UUID
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Identity:
    """What a verified ID token says about the person logging in."""

    issuer: str
    subject: str
    email: str
    name: str
    hosted_domain: str | None


@dataclass(frozen=True, slots=True)
class OrganisationPlan:
    """The organisation a first login joins or creates.

    ``domain`` is None for a personal organisation, which only its creator joins.
    """

    name: str
    slug: str
    domain: str | None


def plan_organisation(
    identity: Identity, consumer_domains: frozenset[str], provider_is_google: bool
) -> OrganisationPlan:
    """A company domain's shared organisation, or a personal one.

    Google says which accounts belong to a Workspace domain with the ``hd`` claim;
    a Google account without it is a personal one whatever its address, and one
    with it belongs to that domain's organisation (a Workspace's addresses may be
    at its secondary domains too). Other providers are trusted for the verified
    address's domain, except the mailbox providers listed in ``consumer_domains``;
    their ``hd``, if any, means nothing.
    """
    if provider_is_google:
        domain = canonical_domain(identity.hosted_domain or "")
    else:
        domain = canonical_domain(mailbox_domain(identity.email))
    if domain is None or domain in consumer_domains:
        suffix = uuid.uuid4().hex[:12]
        return OrganisationPlan(
            name=identity.name or identity.email, slug=f"personal-{suffix}", domain=None
        )
    label = domain.split(".", 1)[0]
    return OrganisationPlan(
        name=label[:1].upper() + label[1:], slug=domain.replace(".", "-"), domain=domain
    )


def mailbox_domain(email: str) -> str:
    """The domain of an address with exactly one ``@`` and a non-empty local part."""
    local, at, domain = email.strip().partition("@")
    if not at or not local or "@" in domain:
        raise LoginFailed("The e-mail address is not a single mailbox.")
    return domain


def canonical_domain(domain: str) -> str | None:
    """One spelling per domain: lower case, no trailing dot, IDNA (punycode) labels.

    Without it ``company.com.``, or a domain in Unicode and in punycode, would each
    found an organisation of their own. None for no domain; LoginFailed for one
    that is not a domain name.
    """
    name = domain.strip().rstrip(".").lower()
    if not name:
        return None
    try:
        ascii_name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise LoginFailed("The e-mail address's domain is not valid.") from None
    labels = ascii_name.split(".")
    if len(labels) < 2 or not all(labels):
        raise LoginFailed("The e-mail address's domain is not valid.")
    return ascii_name
