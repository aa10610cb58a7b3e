"""Operator commands: ``python -m tollgate_identity.entrypoints.cli rotate-keys``."""

from __future__ import annotations

import argparse
from datetime import timedelta

from tollgate_common.settings import load
from tollgate_identity.adapters.keys import KeyStore
from tollgate_identity.entrypoints.settings import IdentitySettings


def main() -> None:
    """Run the command named on the command line."""
    parser = argparse.ArgumentParser(prog="tollgate-identity")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "rotate-keys", help="sign new tokens with a new key; old tokens stay valid"
    )
    parser.parse_args()
    settings = load(IdentitySettings)
    kid = KeyStore(settings.signing_keys_dir).rotate(
        timedelta(seconds=settings.token_lifetime_seconds)
    )
    print(f"new signing key {kid}")


if __name__ == "__main__":
    main()
