"""W3C Trace Context (https://www.w3.org/TR/trace-context/) across gRPC hops.

Each service continues the trace of an incoming ``traceparent`` (Envoy passes the
client's header on) or starts one, logs its trace id, and sends a child
``traceparent`` with a fresh span id on every outgoing call.
"""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
HEADER = "traceparent"


def trace_id_from(traceparent: str | None) -> str:
    """The trace id of a valid ``traceparent``, or a new one."""
    match = _TRACEPARENT.match(traceparent or "")
    if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
        return match.group(1)
    return secrets.token_hex(16)


def child_traceparent(trace_id: str) -> str:
    """A ``traceparent`` for an outgoing call: same trace, new span, sampled."""
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"
