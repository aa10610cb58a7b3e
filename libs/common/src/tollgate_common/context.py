"""The call context: who is calling and on behalf of which request.

Set once per RPC by the server interceptor and read by logging, outgoing gRPC calls
and the use cases, so that nothing below the entrypoint has to pass it around.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

ADMIN = "admin"
MEMBER = "member"


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller, as the access token says."""

    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str
    token: str

    @property
    def is_admin(self) -> bool:
        """Whether the caller may do what only admins may."""
        return self.role == ADMIN


request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "request_id", default="-"
)
principal_var: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


trace_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "trace_id", default=""
)


def current_request_id() -> str:
    """The request id of the call being served, or "-" outside a call."""
    return request_id_var.get()


def current_principal() -> Principal | None:
    """The verified caller of the call being served, if it presented a token."""
    return principal_var.get()


def current_trace_id() -> str:
    """The W3C trace id of the call being served (32 hex digits), or ""."""
    return trace_id_var.get()
