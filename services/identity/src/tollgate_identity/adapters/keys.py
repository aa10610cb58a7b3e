"""Access-token signing keys: ES256 (P-256) private keys, one PEM file each.

The folder holds ``<kid>.pem`` files whose names sort oldest first; ``rotate`` names
a key after the UTC time it was made (``20260101T120000123456-1a2b3c4d``). Every key
in the folder is published in the JWK Set, so tokens signed before a rotation keep
verifying until they expire. The newest key signs once it is ``activation`` old:
with several identity replicas that each see a new key at a slightly different
moment (a Kubernetes secret reaches pods within a minute or so), the delay lets all
of them publish it before any signs with it. The folder is listed again on every
use and its keys re-read when the listing changes, so a rotation by another process
(the operator's command) reaches a running identity without a restart.

Keys are written to a temporary name and renamed into place, so a reader never sees
half a PEM. Private keys are stored unencrypted, readable by the owner only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"
STAMP = "%Y%m%dT%H%M%S%f"
# Kept on top of a token's lifetime before a retired key goes: verifiers accept
# tokens 30 s past their expiry, and clocks of the machines may differ a little.
RETENTION_MARGIN = timedelta(minutes=5)


class NoSigningKey(RuntimeError):
    """The key folder holds no usable key."""


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation did: the new key, when it signs, and the keys removed."""

    kid: str
    signs_from: datetime
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str
    created: datetime
    private: ec.EllipticCurvePrivateKey


class KeyStore:
    """Signing keys in a folder; file names (``<kid>.pem``) sort oldest first."""

    def __init__(self, folder: Path, activation: timedelta = timedelta(0)) -> None:
        self._folder = folder
        self._activation = activation
        self._listing: tuple[tuple[str, int, int], ...] = ()
        self._keys: list[_Key] = []

    def ensure_key(self, create: bool = True) -> None:
        """Check there is a key, making the first one if allowed (development)."""
        if create:
            self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self._pem_files():
                self._write_new()
        self._load()

    def rotate(self, token_lifetime: timedelta) -> Rotation:
        """Add the key that signs next; drop the keys no unexpired token can need.

        The new key signs at once, or once the activation delay has passed. In an
        empty folder this makes the first key, and only that one.
        """
        self._folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        kid = self._write_new()
        keys = self._pem_files()
        cutoff = datetime.now(UTC) - token_lifetime - RETENTION_MARGIN
        # A key stops signing when its successor starts (made, plus the activation
        # delay), and the tokens it signed live one lifetime longer. The new key
        # and the one it replaces are never removed here: the one signs now or
        # soon, the other has signed tokens that are still alive. A successor made
        # here but published elsewhere later (copied into a secret by hand)
        # shortens that grace by the delay beyond the margin.
        removed = []
        for older, newer in itertools.pairwise(keys[:-1]):
            if _created(newer) + self._activation < cutoff:
                older.unlink()
                removed.append(older.stem)
        return Rotation(kid, _created(keys[-1]) + self._activation, tuple(removed))

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT signed by the current key, with its ``kid`` and ``typ: at+jwt``."""
        key = self._current()
        return jwt.encode(
            claims,
            key.private,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": TOKEN_TYPE},
        )

    def _current(self) -> _Key:
        """The newest key old enough to sign; the oldest if none is yet."""
        keys = self._load()
        ready = datetime.now(UTC) - self._activation
        active = [key for key in keys if key.created <= ready]
        return active[-1] if active else keys[0]

    def jwks(self) -> list[dict[str, str]]:
        """The public half of every key, newest first."""
        keys = []
        for key in reversed(self._load()):
            public = json.loads(
                jwt.algorithms.ECAlgorithm.to_jwk(key.private.public_key())
            )
            keys.append(
                {
                    "kty": public["kty"],
                    "crv": public["crv"],
                    "x": public["x"],
                    "y": public["y"],
                    "kid": key.kid,
                    "alg": ALGORITHM,
                    "use": "sig",
                }
            )
        return keys

    def _pem_files(self) -> list[Path]:
        if not self._folder.is_dir():
            return []
        return sorted(path for path in self._folder.glob("*.pem") if path.is_file())

    def _load(self) -> list[_Key]:
        paths = self._pem_files()
        listing = tuple(
            (path.name, (stat := path.stat()).st_mtime_ns, stat.st_size)
            for path in paths
        )
        if listing != self._listing or not self._keys:
            loaded = [
                _Key(path.stem, _created(path), _read_key(path)) for path in paths
            ]
            if not loaded:
                raise NoSigningKey(
                    f"no signing key in {self._folder}: put P-256 keys there as "
                    "<kid>.pem, or set TOLLGATE_SIGNING_KEYS_CREATE=true to make one"
                )
            self._keys, self._listing = loaded, listing
        return self._keys

    def _write_new(self) -> str:
        kid = f"{datetime.now(UTC).strftime(STAMP)}-{secrets.token_hex(4)}"
        newest = self._pem_files()
        if newest and f"{kid}.pem" <= newest[-1].name:
            # The newest name signs, so a new key must sort last: a clock that
            # went back, or keys named by hand after the stamps, would leave the
            # old key signing while the rotation looked done.
            raise RuntimeError(
                f"a new key {kid} would not sort after {newest[-1].stem}; not rotating"
            )
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        partial = self._folder / f".{kid}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(partial, self._folder / f"{kid}.pem")
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return kid


def _read_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise NoSigningKey(f"{path.name} is not a P-256 key, which ES256 needs")
    return key


def _created(path: Path) -> datetime:
    """When a key was made: from its name if ``rotate`` named it, else its mtime."""
    try:
        return datetime.strptime(path.stem.split("-", 1)[0], STAMP).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
