"""Operator commands: ``python -m tollgate_identity.entrypoints.cli rotate-keys``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from tollgate_common.settings import load
from tollgate_identity.adapters.keys import KeyStore
from tollgate_identity.entrypoints.settings import IdentitySettings


def rotate_keys(settings: IdentitySettings) -> dict[str, object]:
    """Add a signing key; report it, when it signs, the keys published and removed.

    ``TOLLGATE_TOKEN_LIFETIME_SECONDS`` and ``TOLLGATE_SIGNING_KEY_ACTIVATION_SECONDS``
    must be the running identity's: they decide which old keys may go.
    """
    store = KeyStore(
        settings.signing_keys_dir,
        timedelta(seconds=settings.signing_key_activation_seconds),
    )
    rotation = store.rotate(timedelta(seconds=settings.token_lifetime_seconds))
    return {
        "new_kid": rotation.kid,
        "signs_from": rotation.signs_from.isoformat(),
        "published_kids": [key["kid"] for key in store.jwks()],
        "removed_kids": list(rotation.removed),
    }


def main() -> None:
    """Run the command named on the command line; the outcome goes out as JSON."""
    parser = argparse.ArgumentParser(prog="tollgate-identity")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "rotate-keys", help="sign new tokens with a new key; old tokens stay valid"
    )
    parser.parse_args()
    json.dump(rotate_keys(load(IdentitySettings)), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
