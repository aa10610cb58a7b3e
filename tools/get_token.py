"""``make token EMAIL=...``: an access token for a person, through a real login.

Logs in at the running stack's /auth/google with the development identity provider
(setting the person's claims there first) and prints only the token, for
``TOKEN=$(make -s token EMAIL=...)``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from devclient import Person, login

GATEWAY = os.environ.get("TOLLGATE_GATEWAY", "http://localhost:8000")
ISSUER = os.environ.get("TOLLGATE_OIDC_ISSUER", "http://127.0.0.1:9400")


def main() -> None:
    """Log the address on the command line in and print its access token."""
    email = sys.argv[1]
    person = Person(sub=email, email=email, name=email.split("@")[0].title())
    sys.stdout.write(login(GATEWAY, ISSUER, person)["access_token"] + "\n")


if __name__ == "__main__":
    main()
