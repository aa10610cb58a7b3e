"""The Idempotency-Key header's rules, shared by every service that honours it."""

from __future__ import annotations

from collections.abc import Iterable

from tollgate_common.errors import InvalidRequest

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_LENGTH = 255


def key_from(metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
    """The request's Idempotency-Key, or None; 422 when it is present but malformed.

    gRPC metadata keys are lower case, so the header matches in any case, as HTTP
    requires. A key is 1 to 255 printable ASCII characters (0x21 to 0x7e, and the
    space inside).
    """
    values = [value for key, value in metadata if key == HEADER]
    if not values:
        return None
    value = values[0]
    if isinstance(value, bytes) or len(values) > 1:
        raise InvalidRequest("header → Idempotency-Key: must be given once, as text")
    if (
        not 1 <= len(value) <= MAX_LENGTH
        or not all(0x20 <= ord(c) <= 0x7E for c in value)
        or value != value.strip()
    ):
        raise InvalidRequest(
            "header → Idempotency-Key: must be 1 to 255 printable ASCII characters"
        )
    return value
