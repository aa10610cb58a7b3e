"""Access-token signing keys: ES256 (P-256) private keys, one PEM file each.

The newest key signs; every key in the folder is published in the JWK Set, so tokens
signed before a rotation keep verifying. ``rotate`` adds a key and deletes keys that
stopped signing longer ago than a token lives. The folder is re-read when it
changes, so a rotation reaches running processes without a restart.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"


class KeyStore:
    """Signing keys in a folder; file names (``<kid>.pem``) sort oldest first."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._seen_mtime: float | None = None
        self._keys: list[tuple[str, ec.EllipticCurvePrivateKey]] = []

    def ensure_key(self) -> None:
        """Create the first key if the folder has none (development start-up)."""
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not any(self._folder.glob("*.pem")):
            self._write_new()

    def rotate(self, token_lifetime: timedelta) -> str:
        """Add a signing key; drop keys no token they signed can still need."""
        self.ensure_key()
        retired = sorted(self._folder.glob("*.pem"))
        kid = self._write_new()
        cutoff = datetime.now(UTC) - token_lifetime
        # A key stops signing when its successor appears; tokens it signed live on
        # for one lifetime after that, so it may go once its successor is older.
        for older, newer in itertools.pairwise(retired):
            if datetime.fromtimestamp(newer.stat().st_mtime, UTC) < cutoff:
                older.unlink()
        return kid

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT signed by the newest key, with its ``kid``."""
        kid, key = self._load()[-1]
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})

    def jwks(self) -> list[dict[str, str]]:
        """The public half of every key, newest first."""
        keys = []
        for kid, key in reversed(self._load()):
            public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
            keys.append(
                {
                    "kty": public["kty"],
                    "crv": public["crv"],
                    "x": public["x"],
                    "y": public["y"],
                    "kid": kid,
                    "alg": ALGORITHM,
                    "use": "sig",
                }
            )
        return keys

    def _load(self) -> list[tuple[str, ec.EllipticCurvePrivateKey]]:
        mtime = self._folder.stat().st_mtime
        if mtime != self._seen_mtime or not self._keys:
            loaded = []
            for path in sorted(self._folder.glob("*.pem")):
                key = serialization.load_pem_private_key(path.read_bytes(), None)
                assert isinstance(key, ec.EllipticCurvePrivateKey)
                loaded.append((path.stem, key))
            if not loaded:
                raise RuntimeError(f"no signing key in {self._folder}")
            self._keys, self._seen_mtime = loaded, mtime
        return self._keys

    def _write_new(self) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kid = f"{stamp}-{secrets.token_hex(4)}"
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self._folder / f"{kid}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return kid
