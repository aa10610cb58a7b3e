"""The signing key folder: first key, signing, the JWK Set and rotation."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tollgate_identity.adapters.keys import STAMP, KeyStore, NoSigningKey
from tollgate_identity.entrypoints import cli
from tollgate_identity.entrypoints.settings import IdentitySettings

HOUR = timedelta(hours=1)


def plant(folder: Path, made: datetime, suffix: str = "00000000") -> str:
    """Put a key into the folder as if ``rotate`` had made it at ``made``."""
    folder.mkdir(parents=True, exist_ok=True)
    kid = f"{made.strftime(STAMP)}-{suffix}"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (folder / f"{kid}.pem").write_bytes(pem)
    return kid


def kid_of(token: str) -> str:
    """The kid in a token's header."""
    return str(jwt.get_unverified_header(token)["kid"])


def test_the_first_start_makes_one_private_key_only_the_owner_can_read(
    tmp_path: Path,
) -> None:
    """ensure_key creates a folder and a 0600 key once, and never a second one."""
    folder = tmp_path / "keys"
    KeyStore(folder).ensure_key()
    KeyStore(folder).ensure_key()
    keys = list(folder.glob("*.pem"))
    assert len(keys) == 1
    assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert not [path for path in folder.iterdir() if path.suffix != ".pem"]


def test_production_without_keys_stops_at_start(tmp_path: Path) -> None:
    """With creation off, an empty or missing folder is an error, not a new key."""
    with pytest.raises(NoSigningKey, match="TOLLGATE_SIGNING_KEYS_CREATE"):
        KeyStore(tmp_path / "missing").ensure_key(create=False)
    assert not (tmp_path / "missing").exists()


def test_a_mounted_folder_of_keys_is_used_as_it_is(tmp_path: Path) -> None:
    """Keys put there by an operator are read, and none is added."""
    kid = plant(tmp_path, datetime(2026, 1, 1, tzinfo=UTC))
    store = KeyStore(tmp_path)
    store.ensure_key(create=False)
    assert kid_of(store.sign({"sub": "x"})) == kid
    assert len(list(tmp_path.glob("*.pem"))) == 1


def test_a_key_that_is_not_p256_is_refused(tmp_path: Path) -> None:
    """ES256 needs P-256; a P-384 key in the folder stops identity with a reason."""
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "big.pem").write_bytes(pem)
    with pytest.raises(NoSigningKey, match="P-256"):
        KeyStore(tmp_path).ensure_key(create=False)


def test_tokens_carry_the_kid_the_type_and_verify_with_the_published_key(
    tmp_path: Path,
) -> None:
    """ES256, kid of the newest key, typ at+jwt; the JWK Set verifies it."""
    store = KeyStore(tmp_path)
    store.ensure_key()
    token = store.sign({"sub": "someone"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": header["kid"], "typ": "at+jwt"}
    (published,) = store.jwks()
    assert published["kid"] == header["kid"]
    key = jwt.PyJWK(published)
    assert jwt.decode(token, key, algorithms=["ES256"]) == {"sub": "someone"}


def test_the_jwk_set_holds_public_halves_only(tmp_path: Path) -> None:
    """kty, crv, x, y, kid, alg and use: never the private ``d``."""
    store = KeyStore(tmp_path)
    store.ensure_key()
    for key in store.jwks():
        assert set(key) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == (
            "EC",
            "P-256",
            "ES256",
            "sig",
        )


def test_after_a_rotation_the_new_key_signs_and_the_old_one_stays_published(
    tmp_path: Path,
) -> None:
    """A running store sees another process's rotation at its next use."""
    running = KeyStore(tmp_path)
    running.ensure_key()
    old = kid_of(running.sign({}))

    rotation = KeyStore(tmp_path).rotate(HOUR)
    assert rotation.kid != old and rotation.removed == ()
    assert kid_of(running.sign({})) == rotation.kid
    assert [key["kid"] for key in running.jwks()] == [rotation.kid, old]


def test_rotating_an_empty_folder_makes_just_the_first_key(tmp_path: Path) -> None:
    """How an operator makes the first key of a production secret."""
    rotation = KeyStore(tmp_path / "keys").rotate(HOUR)
    assert [path.stem for path in (tmp_path / "keys").glob("*.pem")] == [rotation.kid]


def test_with_an_activation_delay_a_new_key_is_published_before_it_signs(
    tmp_path: Path,
) -> None:
    """Replicas that see the key late still publish it before anyone signs with it."""
    now = datetime.now(UTC)
    old = plant(tmp_path, now - timedelta(days=1))
    store = KeyStore(tmp_path, activation=timedelta(minutes=5))
    rotation = store.rotate(HOUR)
    assert kid_of(store.sign({})) == old
    assert [key["kid"] for key in store.jwks()] == [rotation.kid, old]
    assert rotation.signs_from - now >= timedelta(minutes=5)

    ready = plant(tmp_path, now - timedelta(minutes=6), "ffffffff")
    newer = plant(tmp_path, now - timedelta(minutes=1), "ffffffff")
    assert ready < newer < rotation.kid
    assert kid_of(store.sign({})) == ready


def test_the_only_key_signs_however_young(tmp_path: Path) -> None:
    """A first start has nothing older to sign with."""
    store = KeyStore(tmp_path, activation=timedelta(minutes=5))
    store.ensure_key()
    (only,) = store.jwks()
    assert kid_of(store.sign({})) == only["kid"]


def test_a_delayed_successor_holds_its_forerunner_back_by_the_delay(
    tmp_path: Path,
) -> None:
    """A key goes a lifetime after its successor began to sign, not was made."""
    now = datetime.now(UTC)
    first = plant(tmp_path, now - timedelta(hours=5), "aaaaaaaa")
    plant(tmp_path, now - timedelta(minutes=90), "bbbbbbbb")
    plant(tmp_path, now - timedelta(minutes=10), "cccccccc")
    assert KeyStore(tmp_path, timedelta(minutes=30)).rotate(HOUR).removed == ()
    assert KeyStore(tmp_path, timedelta(minutes=20)).rotate(HOUR).removed == (first,)


def test_rotations_in_quick_succession_keep_their_order(tmp_path: Path) -> None:
    """Five rotations within a second: each new key is the one that signs."""
    store = KeyStore(tmp_path)
    for _ in range(5):
        kid = store.rotate(HOUR).kid
        assert kid_of(store.sign({})) == kid
    assert len(store.jwks()) == 5


def test_rotation_drops_only_keys_whose_tokens_have_all_expired(
    tmp_path: Path,
) -> None:
    """A key goes once its successor has been signing for a lifetime and a margin.

    Keys made 5 h, 3 h, 70 min, 50 min and 10 min ago, tokens living 1 h: the 5 h
    key was replaced 3 h ago and the 3 h key 70 min ago, so both go; the 70 min key
    was replaced only 50 min ago and its tokens may live 10 min more, so it stays.
    """
    now = datetime.now(UTC)
    ages = [timedelta(hours=5), timedelta(hours=3), timedelta(minutes=70)]
    ages += [timedelta(minutes=50), timedelta(minutes=10)]
    kids = [plant(tmp_path, now - age) for age in ages]

    rotation = KeyStore(tmp_path).rotate(HOUR)
    assert rotation.removed == (kids[0], kids[1])
    left = sorted(path.stem for path in tmp_path.glob("*.pem"))
    assert left == [*kids[2:], rotation.kid]


def test_the_key_that_just_stopped_signing_is_never_dropped(tmp_path: Path) -> None:
    """However old it is, its tokens were issued until a moment ago."""
    now = datetime.now(UTC)
    ancient = plant(tmp_path, now - timedelta(days=30), "aaaaaaaa")
    previous = plant(tmp_path, now - timedelta(days=20), "bbbbbbbb")
    rotation = KeyStore(tmp_path).rotate(HOUR)
    assert rotation.removed == (ancient,)
    assert sorted(path.stem for path in tmp_path.glob("*.pem")) == [
        previous,
        rotation.kid,
    ]


def test_the_margin_covers_the_verifiers_leeway(tmp_path: Path) -> None:
    """A successor one lifetime and a minute old does not yet release its forerunner."""
    now = datetime.now(UTC)
    first = plant(tmp_path, now - timedelta(hours=3), "aaaaaaaa")
    plant(tmp_path, now - HOUR - timedelta(minutes=1), "bbbbbbbb")
    plant(tmp_path, now - timedelta(minutes=1), "cccccccc")
    rotation = KeyStore(tmp_path).rotate(HOUR)
    assert rotation.removed == ()
    assert (tmp_path / f"{first}.pem").exists()


def test_keys_named_by_hand_are_aged_by_their_file_time(tmp_path: Path) -> None:
    """Without a stamp in the name, the modification time says when a key came."""
    old = tmp_path / "0001.pem"
    newer = tmp_path / "0002.pem"
    for path in (old, newer):
        path.write_bytes(
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    os.utime(newer, (two_hours_ago, two_hours_ago))
    plant(tmp_path, datetime.now(UTC) - timedelta(minutes=5))
    rotation = KeyStore(tmp_path).rotate(HOUR)
    assert rotation.removed == ("0001",)


def test_a_new_key_that_would_not_sort_last_is_not_made(tmp_path: Path) -> None:
    """Rotation refuses rather than leave an old key signing."""
    plant(tmp_path, datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(RuntimeError, match="would not sort after"):
        KeyStore(tmp_path).rotate(HOUR)
    assert len(list(tmp_path.glob("*.pem"))) == 1


def test_a_rotation_leaves_no_partial_file(tmp_path: Path) -> None:
    """The key is written under a temporary name and renamed into place."""
    store = KeyStore(tmp_path)
    store.rotate(HOUR)
    store.rotate(HOUR)
    assert all(path.suffix == ".pem" for path in tmp_path.iterdir())


def test_the_rotate_keys_command_reports_what_it_did(tmp_path: Path) -> None:
    """The operator command's outcome names the new signing key and the set."""
    settings = IdentitySettings(signing_keys_dir=tmp_path, token_lifetime_seconds=60)
    first = cli.rotate_keys(settings)
    second = cli.rotate_keys(settings)
    assert second["published_kids"][0] == second["new_kid"]
    assert first["new_kid"] in second["published_kids"]
    assert second["removed_kids"] == []
    assert datetime.fromisoformat(second["signs_from"]) <= datetime.now(UTC)
