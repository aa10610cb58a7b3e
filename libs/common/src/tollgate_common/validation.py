"""Request validation from the rules declared in the protos (buf.validate).

Constraints live once, on the fields of the request messages; protovalidate checks
them before a handler runs, and the first violation becomes a 422 whose message
names the field, prefixed ``body →`` for fields that come from an HTTP body.
"""

from __future__ import annotations

import functools

import protovalidate
from google.api import annotations_pb2
from google.protobuf import descriptor_pool
from google.protobuf.message import Message

from tollgate_common.errors import InvalidRequest


def validate(method: str, request: Message) -> None:
    """Raise InvalidRequest naming the first field that breaks its rules."""
    if not isinstance(request, Message):
        return
    try:
        violations = protovalidate.collect_violations(request)
    except protovalidate.CompilationError as error:
        raise RuntimeError(f"the rules of {method} do not compile") from error
    if not violations:
        return
    first = violations[0].proto
    field = ".".join(e.field_name for e in first.field.elements) or "request"
    raise InvalidRequest(f"{_prefix(method)}{field}: {first.message}")


@functools.cache
def _prefix(method: str) -> str:
    """ "body → " when the method's HTTP rule maps the body onto the request."""
    name = method.lstrip("/").replace("/", ".")
    try:
        descriptor = descriptor_pool.Default().FindMethodByName(name)
    except KeyError:
        return ""
    rule = descriptor.GetOptions().Extensions[annotations_pb2.http]
    return "body → " if rule.body else ""
