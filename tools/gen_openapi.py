"""Write the OpenAPI 3.1 document of the public REST API from the descriptor set.

What the protos say comes from build/tollgate.pb, which gen_protos.sh builds with
``--include_source_info``: paths and methods from the ``google.api.http`` rules,
bodies and responses from the messages (JSON names as the gateway prints them, with
``preserve_proto_field_names``), limits from the ``buf.validate`` rules, and every
description from the comments. What a proto cannot say is data here: which statuses
and error codes each endpoint answers (the table of shared/spec/API.md), which ones
need a token or take an ``Idempotency-Key``, and the pages the gateway serves itself.

    python tools/gen_openapi.py [--descriptor build/tollgate.pb] \\
        [--out build/openapi.json]
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_SERVICES = (
    "tollgate.identity.v1.IdentityService",
    "tollgate.ledger.v1.LedgerService",
    "tollgate.jobs.v1.JobsService",
)
VALIDATE_EXTENSION = "buf.validate.field"
ENVELOPE_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
Json = dict[str, Any]

# Every public error code of API.md: its status and when it is answered.
ERROR_CODES: Mapping[str, tuple[int, str]] = {
    "google_auth_failed": (
        400,
        "The login callback failed: missing or bad code, state mismatch, provider "
        "error, unverified e-mail.",
    ),
    "malformed_request": (
        400,
        "The body is not JSON, or is JSON but not an object.",
    ),
    "authentication_required": (
        401,
        "No bearer token, or it is malformed, expired, not yet valid, wrongly signed "
        "or for another audience.",
    ),
    "insufficient_credits": (
        402,
        "The organisation's balance is below the price; context: `balance`, "
        "`required`.",
    ),
    "forbidden": (403, "The role does not allow it (admins only)."),
    "job_not_found": (
        404,
        "Unknown job id, a job of another organisation, or an id that is not a UUID.",
    ),
    "idempotency_conflict": (
        409,
        "A request with the same Idempotency-Key is still being processed.",
    ),
    "payload_too_large": (413, "The body is over the gateway's limit (64 KiB)."),
    "validation_error": (
        422,
        "A field is missing, unknown, of the wrong type or out of range; the message "
        "names the field.",
    ),
    "idempotency_key_reused": (
        422,
        "The Idempotency-Key was used before with another body or endpoint.",
    ),
    "rate_limited": (
        429,
        "Over the organisation's rate limit (off by default); see `Retry-After`.",
    ),
    "service_unavailable": (
        503,
        "A dependency is down; nothing was charged, or the charge was refunded.",
    ),
    "internal_error": (500, "Anything else; context: `request_id`."),
}
# Any endpoint can meet these: the gateway answers them whoever is behind it.
ALWAYS = ("service_unavailable", "internal_error")
BODY_ERRORS = ("malformed_request", "payload_too_large", "validation_error")
# Ledger and jobs count every authenticated call against the organisation's limit.
LIMITED = ("authentication_required", "rate_limited")
PAID_ERRORS = (
    *LIMITED,
    "insufficient_credits",
    "idempotency_conflict",
    "idempotency_key_reused",
)


@dataclass(frozen=True)
class Endpoint:
    """What the HTTP contract adds to one RPC's binding (API.md, Endpoints)."""

    errors: tuple[str, ...] = ()
    status: int = 200
    token: bool = False
    idempotent: bool = False
    headers: tuple[str, ...] = ()


ENDPOINTS: Mapping[str, Endpoint] = {
    "tollgate.identity.v1.IdentityService.StartLogin": Endpoint(
        status=302, headers=("Location", "Set-Cookie")
    ),
    "tollgate.identity.v1.IdentityService.CompleteLogin": Endpoint(
        errors=("google_auth_failed",), headers=("Set-Cookie",)
    ),
    "tollgate.identity.v1.IdentityService.GetMe": Endpoint(
        errors=("authentication_required",), token=True
    ),
    "tollgate.identity.v1.IdentityService.GetJwks": Endpoint(),
    "tollgate.identity.v1.IdentityService.GetPlatformHealth": Endpoint(),
    "tollgate.ledger.v1.LedgerService.Grant": Endpoint(
        errors=(
            *LIMITED,
            "forbidden",
            "idempotency_conflict",
            "idempotency_key_reused",
        ),
        token=True,
        idempotent=True,
    ),
    "tollgate.ledger.v1.LedgerService.GetBalance": Endpoint(errors=LIMITED, token=True),
    "tollgate.jobs.v1.JobsService.Analyse": Endpoint(
        errors=PAID_ERRORS, token=True, idempotent=True
    ),
    "tollgate.jobs.v1.JobsService.Summarise": Endpoint(
        errors=PAID_ERRORS, token=True, idempotent=True
    ),
    "tollgate.jobs.v1.JobsService.GetJob": Endpoint(
        errors=(*LIMITED, "job_not_found"), token=True
    ),
}
HEADERS: Mapping[str, Json] = {
    "Location": {
        "description": "Where to send the browser: the provider's authorization "
        "endpoint.",
        "schema": {"type": "string", "format": "uri"},
    },
    "Set-Cookie": {
        "description": "The login cookie that binds the login's state to this "
        "browser (cleared by the callback).",
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier "
        "request with the same Idempotency-Key; nothing was charged again.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    },
    "X-Request-Id": {
        "description": "The request's id: the client's own one if it sent one.",
        "schema": {"type": "string"},
    },
}
# FieldDescriptorProto.Type -> the JSON schema of a proto3 JSON value of that type.
FieldType = descriptor_pb2.FieldDescriptorProto
SCALARS: Mapping[int, Json] = {
    FieldType.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldType.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldType.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldType.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldType.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldType.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldType.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # proto3 JSON prints 64-bit integers as strings, and accepts both forms.
    FieldType.TYPE_INT64: {"type": ["string", "integer"], "format": "int64"},
    FieldType.TYPE_SINT64: {"type": ["string", "integer"], "format": "int64"},
    FieldType.TYPE_SFIXED64: {"type": ["string", "integer"], "format": "int64"},
    FieldType.TYPE_UINT64: {"type": ["string", "integer"], "format": "int64"},
    FieldType.TYPE_FIXED64: {"type": ["string", "integer"], "format": "int64"},
    FieldType.TYPE_BOOL: {"type": "boolean"},
    FieldType.TYPE_STRING: {"type": "string"},
    FieldType.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
ANY_JSON = ["string", "number", "boolean", "object", "array", "null"]
WELL_KNOWN: Mapping[str, Json] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    ".google.protobuf.Value": {"type": ANY_JSON},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.ListValue": {"type": "array"},
    ".google.protobuf.StringValue": {"type": ["string", "null"]},
    ".google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    ".google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    ".google.protobuf.Empty": {"type": "object"},
}
# buf.validate rule name -> JSON Schema keyword, per rule family.
LIMITS: Mapping[str, Mapping[str, str]] = {
    "string": {
        "min_len": "minLength",
        "max_len": "maxLength",
        "pattern": "pattern",
    },
    "int32": {"gte": "minimum", "lte": "maximum", "gt": "exclusiveMinimum"},
    "int64": {"gte": "minimum", "lte": "maximum", "gt": "exclusiveMinimum"},
}
# The pages the gateway serves from files; no proto describes them.
GATEWAY_PAGES: Mapping[str, tuple[str, str, str]] = {
    "/": ("The web console.", "text/html", "Console"),
    "/docs": ("This document in Swagger UI.", "text/html", "Swagger UI"),
    "/openapi.json": ("This document.", "application/json", "OpenAPI document"),
}


class Descriptors:
    """The messages, comments and options of one FileDescriptorSet."""

    def __init__(self, data: bytes) -> None:
        self.files = descriptor_pb2.FileDescriptorSet.FromString(data).file
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.comments: dict[tuple[str, tuple[int, ...]], str] = {}
        self.paths: dict[str, tuple[str, tuple[int, ...]]] = {}
        for file in self.files:
            for location in file.source_code_info.location:
                text = _clean_comment(location.leading_comments)
                if text:
                    self.comments[(file.name, tuple(location.path))] = text
            for index, message in enumerate(file.message_type):
                self._add_message(file, f".{file.package}", message, (4, index))
        self._validate = _validate_reader(data)

    def _add_message(
        self,
        file: descriptor_pb2.FileDescriptorProto,
        scope: str,
        message: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
    ) -> None:
        name = f"{scope}.{message.name}"
        self.messages[name] = message
        self.paths[name] = (file.name, path)
        for index, nested in enumerate(message.nested_type):
            self._add_message(file, name, nested, (*path, 3, index))

    def comment(self, file: str, path: tuple[int, ...]) -> str:
        """The leading comment of the element at ``path`` in ``file``, or ""."""
        return self.comments.get((file, path), "")

    def message_comment(self, name: str) -> str:
        """The comment above a message."""
        return self.comment(*self.paths[name])

    def field_comment(self, name: str, index: int) -> str:
        """The comment above the index-th field of a message."""
        file, path = self.paths[name]
        return self.comment(file, (*path, 2, index))

    def limits(self, field: descriptor_pb2.FieldDescriptorProto) -> Json:
        """JSON Schema keywords from the field's buf.validate rules, if any."""
        return self._validate(field)

    def services(self) -> Iterator[tuple[descriptor_pb2.FileDescriptorProto, int]]:
        """(file, index) of each public service."""
        for file in self.files:
            for index, service in enumerate(file.service):
                if f"{file.package}.{service.name}" in PUBLIC_SERVICES:
                    yield file, index


def _clean_comment(text: str) -> str:
    """A proto comment as Markdown paragraphs: its lines joined, blank lines kept."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _validate_reader(data: bytes) -> Any:
    """A function giving a field's buf.validate limits, read with the set's own
    definitions (no generated module needed); gives {} when the set has none."""
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file)
    try:
        extension = pool.FindExtensionByName(VALIDATE_EXTENSION)
    except KeyError:
        return lambda field: {}
    classes = message_factory.GetMessageClassesForFiles(
        ["google/protobuf/descriptor.proto", extension.file.name], pool
    )
    options_class = classes["google.protobuf.FieldOptions"]

    def limits(field: descriptor_pb2.FieldDescriptorProto) -> Json:
        options = options_class.FromString(field.options.SerializeToString())
        if not options.HasExtension(extension):
            return {}
        rules = options.Extensions[extension]
        keywords: Json = {}
        for family, names in LIMITS.items():
            if not rules.HasField(family):
                continue
            family_rules = getattr(rules, family)
            for rule, keyword in names.items():
                if family_rules.HasField(rule):
                    keywords[keyword] = getattr(family_rules, rule)
            if family == "string" and family_rules.uuid:
                keywords["format"] = "uuid"
        return keywords

    return limits


def field_schema(
    descriptors: Descriptors, message: str, index: int, components: Json
) -> Json:
    """The schema of one field of a message, its comment and limits included."""
    field = descriptors.messages[message].field[index]
    repeated = field.label == FieldType.LABEL_REPEATED
    if field.type == FieldType.TYPE_MESSAGE and field.type_name in WELL_KNOWN:
        schema = dict(WELL_KNOWN[field.type_name])
    elif field.type == FieldType.TYPE_MESSAGE:
        entry = descriptors.messages[field.type_name]
        if entry.options.map_entry:
            value = field_schema(descriptors, field.type_name, 1, components)
            value.pop("description", None)
            schema, repeated = {"type": "object", "additionalProperties": value}, False
        else:
            schema = message_ref(descriptors, field.type_name, components)
    elif field.type == FieldType.TYPE_ENUM:
        schema = {"type": "string"}
    else:
        schema = dict(SCALARS[field.type])
    schema |= descriptors.limits(field)
    if repeated:
        schema = {"type": "array", "items": schema}
    description = descriptors.field_comment(message, index)
    if description and "$ref" in schema:
        schema = {"allOf": [schema], "description": description}
    elif description:
        schema["description"] = description
    return schema


def message_ref(descriptors: Descriptors, name: str, components: Json) -> Json:
    """A $ref to the message's schema, adding it (and what it uses) to components."""
    short = name.rsplit(".", 1)[-1]
    if short not in components:
        components[short] = {}  # placeholder: a message may refer to itself
        components[short] = message_schema(descriptors, name, components)
    return {"$ref": f"#/components/schemas/{short}"}


def message_schema(
    descriptors: Descriptors,
    name: str,
    components: Json,
    skip: tuple[str, ...] = (),
    closed: bool = False,
) -> Json:
    """An object schema of a message; the gateway prints every primitive field, so
    those are required in responses (``closed`` is for request bodies, which the
    gateway rejects with unknown keys, and which require nothing themselves)."""
    message = descriptors.messages[name]
    properties, required = {}, []
    for index, field in enumerate(message.field):
        if field.name in skip:
            continue
        properties[field.name] = field_schema(descriptors, name, index, components)
        printed = field.type != FieldType.TYPE_MESSAGE or field.type_name in (
            ".google.protobuf.Value",
        )
        if not closed and (printed or field.label == FieldType.LABEL_REPEATED):
            required.append(field.name)
    schema: Json = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    description = descriptors.message_comment(name)
    if description:
        schema["description"] = description
    return schema


def error_responses(codes: tuple[str, ...]) -> Json:
    """One response per status, listing the error codes it can carry."""
    by_status: dict[int, list[str]] = {}
    for code in (*codes, *ALWAYS):
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    responses = {}
    for status in sorted(by_status):
        lines = [f"- `{code}`: {ERROR_CODES[code][1]}" for code in by_status[status]]
        first = by_status[status][0]
        detail: Json = {"error": first, "message": ERROR_CODES[first][1]}
        headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
        if status == 429:
            headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
        responses[str(status)] = {
            "description": "\n".join(lines),
            "headers": headers,
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            ENVELOPE_REF,
                            {
                                "properties": {
                                    "detail": {
                                        "properties": {
                                            "error": {"enum": by_status[status]}
                                        }
                                    }
                                }
                            },
                        ]
                    },
                    "example": {"detail": detail},
                }
            },
        }
    return responses


def operation(
    descriptors: Descriptors,
    file: descriptor_pb2.FileDescriptorProto,
    service_index: int,
    method_index: int,
    rule: Any,
    components: Json,
) -> tuple[str, str, Json]:
    """(path, verb, operation object) of one RPC's HTTP binding."""
    service = file.service[service_index]
    method = service.method[method_index]
    full_name = f"{file.package}.{service.name}.{method.name}"
    endpoint = ENDPOINTS[full_name]
    verb = rule.WhichOneof("pattern")
    path = getattr(rule, verb)
    path_params = re.findall(r"\{([^}=]+)", path)
    request = method.input_type
    description = descriptors.comment(file.name, (6, service_index, 2, method_index))

    parameters: list[Json] = []
    fields = descriptors.messages[request].field
    for index, field in enumerate(fields):
        schema = field_schema(descriptors, request, index, components)
        where = "path" if field.name in path_params else None
        if where is None and not rule.body:
            where = "query"
        if where:
            parameters.append(
                {
                    "name": field.name,
                    "in": where,
                    "required": where == "path",
                    "description": schema.pop("description", ""),
                    "schema": schema,
                }
            )
    if endpoint.idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})

    codes = endpoint.errors + (BODY_ERRORS if rule.body else ())
    if endpoint.idempotent:
        codes += ("validation_error",)
    responses = error_responses(tuple(dict.fromkeys(codes)))
    success_headers = {
        name: {"$ref": f"#/components/headers/{name}"}
        for name in (*endpoint.headers, "X-Request-Id")
    }
    if endpoint.idempotent:
        success_headers["Idempotent-Replayed"] = {
            "$ref": "#/components/headers/Idempotent-Replayed"
        }
    responses[str(endpoint.status)] = {
        "description": descriptors.message_comment(method.output_type) or "OK",
        "headers": success_headers,
        "content": {
            "application/json": {
                "schema": message_ref(descriptors, method.output_type, components)
            }
        },
    }

    op: Json = {
        "operationId": method.name,
        "tags": [service.name],
        "summary": description.split(". ")[0].rstrip(".") if description else "",
        "description": description,
        "responses": dict(sorted(responses.items())),
    }
    if parameters:
        op["parameters"] = parameters
    if rule.body:
        body_schema = message_schema(
            descriptors, request, components, skip=tuple(path_params), closed=True
        )
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema}},
        }
    op["security"] = [{"bearerAuth": []}] if endpoint.token else []
    return path, verb, op


def health_unhealthy(op: Json) -> None:
    """GET /health answers 503 with its own body when a database is unreachable."""
    unhealthy = op["responses"]["503"]
    unhealthy["description"] = (
        "A service cannot reach its database (the health body, `status` "
        '"unhealthy"), or the gateway cannot reach the service (the error envelope).'
    )
    health = op["responses"]["200"]["content"]["application/json"]["schema"]
    envelope = unhealthy["content"]["application/json"]
    envelope["schema"] = {"oneOf": [health, envelope["schema"]]}
    envelope.pop("example")


def gateway_pages() -> Json:
    """The path items of the pages the gateway serves itself."""
    paths = {}
    for path, (summary, media_type, title) in GATEWAY_PAGES.items():
        paths[path] = {
            "get": {
                "operationId": "Get"
                + "".join(w.title() for w in re.findall(r"\w+", title)),
                "tags": ["Gateway"],
                "summary": summary,
                "description": f"{title}, served by the gateway from a file.",
                "security": [],
                "responses": {
                    "200": {
                        "description": summary,
                        "content": {media_type: {"schema": {"type": "string"}}},
                    }
                },
            }
        }
    return paths


def document(descriptor: bytes) -> Json:
    """The whole OpenAPI 3.1 document."""
    descriptors = Descriptors(descriptor)
    components: Json = {
        "ErrorEnvelope": {
            "type": "object",
            "description": "Every error, whichever service or the gateway made it.",
            "required": ["detail"],
            "properties": {
                "detail": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {
                            "type": "string",
                            "description": "Stable, machine-readable code.",
                            "enum": list(ERROR_CODES),
                        },
                        "message": {
                            "type": "string",
                            "description": "For a person; may change.",
                        },
                    },
                    "additionalProperties": {
                        "description": "Context, for example `balance` and `required`"
                        " on 402, `request_id` on 500."
                    },
                }
            },
        }
    }
    paths: Json = {}
    tags = []
    for file, service_index in descriptors.services():
        service = file.service[service_index]
        tags.append(
            {
                "name": service.name,
                # The first paragraph: the rest is about gRPC metadata.
                "description": descriptors.comment(file.name, (6, service_index)).split(
                    "\n\n"
                )[0],
            }
        )
        for method_index, method in enumerate(service.method):
            if not method.options.HasExtension(annotations_pb2.http):
                continue  # internal: the gateway does not route it
            rule = method.options.Extensions[annotations_pb2.http]
            path, verb, op = operation(
                descriptors, file, service_index, method_index, rule, components
            )
            if path == "/health":
                health_unhealthy(op)
            paths.setdefault(path, {})[verb] = op
    paths |= gateway_pages()
    tags.append({"name": "Gateway", "description": "Pages the gateway serves itself."})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate API",
            "version": "1",
            "description": (
                "A multi-tenant pay-per-call API: log in with OpenID Connect, grant "
                "credits to your organisation, spend them on text analysis and "
                "summarisation. Generated from the protos by tools/gen_openapi.py. "
                "Every error has the envelope `ErrorEnvelope`; every response "
                "carries `X-Request-Id`."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "1 to 255 printable ASCII characters. The same key "
                    "with the same body returns the stored response and charges "
                    "nothing again.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 255,
                        "pattern": "^[\\x20-\\x7e]+$",
                    },
                }
            },
            "headers": dict(HEADERS),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The access_token of GET /auth/callback.",
                }
            },
        },
    }


def main() -> None:
    """Parse the command line and write the document."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--descriptor", type=Path, default=ROOT / "build/tollgate.pb")
    parser.add_argument("--out", type=Path, default=ROOT / "build/openapi.json")
    args = parser.parse_args()
    text = json.dumps(document(args.descriptor.read_bytes()), indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
