"""The Idempotency-Key header's syntax."""

from __future__ import annotations

import pytest

from tollgate_common.errors import InvalidRequest
from tollgate_common.idempotency import key_from


@pytest.mark.parametrize("key", ["a", "order-123", "x" * 255, "with inner space", "~!"])
def test_printable_ascii_keys_of_one_to_255_characters_are_accepted(key: str) -> None:
    """Valid keys come back unchanged."""
    assert key_from([("idempotency-key", key)]) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "café", "tab\there", " lead", "nl\n"])
def test_other_keys_are_validation_errors(key: str) -> None:
    """Empty, long, non-ASCII or control characters are 422."""
    with pytest.raises(InvalidRequest, match="Idempotency-Key"):
        key_from([("idempotency-key", key)])


def test_no_header_means_no_key() -> None:
    """Without the header the call is not idempotent."""
    assert key_from([("authorization", "Bearer x")]) is None
