"""Render the gateway's Envoy config from gateway/envoy.yaml.tmpl.

The template is filled with ``string.Template``: ports, the descriptor set, the body
limit, one endpoint list per upstream service, the Lua filter (gateway/errors.lua,
inlined so the rendered file stands alone) and the routes of the files the gateway
serves itself (the console, Swagger UI and the OpenAPI document). The descriptor set is
also read here, with a minimal protobuf wire decoder, to give the Lua filter the JSON
fields each body-taking REST route accepts: the transcoder silently drops unknown
fields, the gateway must not.

    python gateway/render.py --out build/envoy.yaml --listen-port 8000 \\
        --admin-port 9901 --identity 127.0.0.1:50051 --ledger 127.0.0.1:50052 \\
        --jobs 127.0.0.1:50053 --descriptor build/tollgate.pb \\
        [--console-dir console] [--openapi build/openapi.json] \\
        [--swagger-dir .tools/node_modules/swagger-ui-dist]

Each upstream flag takes a comma-separated list of host:port, one per replica.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from string import Template

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVICES = (
    "tollgate.identity.v1.IdentityService",
    "tollgate.ledger.v1.LedgerService",
    "tollgate.jobs.v1.JobsService",
)
INDENT = " " * 18  # of the Lua code under inline_string in the template
HTTP_RULE_EXTENSION = 72295728  # google.api.http on MethodOptions
VERBS = {2: "GET", 3: "PUT", 4: "POST", 5: "DELETE", 6: "PATCH"}  # HttpRule fields
# FieldDescriptorProto.Type -> the JSON value it takes (an enum takes its name)
SCALARS = dict.fromkeys((3, 4, 5, 6, 7, 13, 15, 16, 17, 18), "integer")
SCALARS |= {1: "number", 2: "number", 8: "boolean", 9: "string", 12: "string"}
SCALARS[14] = "string"

Field = tuple[int, int | bytes]

# Content-Security-Policy of the pages: their scripts, styles and images come from the
# gateway itself, never from elsewhere. Swagger UI sets inline styles.
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
DOCS_CSP = CONSOLE_CSP + "; style-src 'self' 'unsafe-inline'"
HTML, JS, CSS = "text/html", "text/javascript", "text/css"
JSON = "application/json"
# The files the gateway serves: path, (folder flag, file name), type, policy. The
# browser's /auth/callback, the console's own copy, is added by static_routes().
STATIC = (
    ("/", ("console_dir", "index.html"), HTML, CONSOLE_CSP),
    ("/console/app.js", ("console_dir", "app.js"), JS, None),
    ("/console/style.css", ("console_dir", "style.css"), CSS, None),
    ("/docs", ("console_dir", "docs.html"), HTML, DOCS_CSP),
    ("/docs/docs.js", ("console_dir", "docs.js"), JS, None),
    ("/docs/swagger-ui.css", ("swagger_dir", "swagger-ui.css"), CSS, None),
    ("/docs/swagger-ui-bundle.js", ("swagger_dir", "swagger-ui-bundle.js"), JS, None),
    ("/openapi.json", ("openapi", ""), JSON, None),
)
ROUTE_INDENT = " " * 14  # of the routes list in the template
_OFF = (
    '{"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}'
)
PAST_THE_API = (
    f"{{envoy.filters.http.lua: {_OFF}, "
    f"envoy.filters.http.grpc_json_transcoder: {_OFF}}}"
)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _fields(buf: bytes) -> Iterator[Field]:
    """Yield (field number, value) of one serialized message; bytes for LEN."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield key >> 3, value
            continue
        size = {1: 8, 5: 4}.get(wire)
        if size is None:
            if wire != 2:
                raise ValueError(f"unsupported wire type {wire}")
            size, pos = _varint(buf, pos)
        yield key >> 3, buf[pos : pos + size]
        pos += size


def _get(buf: bytes, number: int) -> list[bytes]:
    return [v for n, v in _fields(buf) if n == number and isinstance(v, bytes)]


def _text(buf: bytes, number: int) -> str:
    values = _get(buf, number)
    return values[-1].decode() if values else ""


def _field_kind(field: bytes) -> str:
    """What JSON value a field takes: a scalar type, list, object or any."""
    ints = {n: v for n, v in _fields(field) if isinstance(v, int)}
    kind, type_name = ints.get(5, 0), _text(field, 6)
    if kind in (10, 11):  # message: well-known types and maps take many shapes
        if type_name.startswith(".google.protobuf.") or ints.get(4) == 3:
            return "any"
        return "object"
    return "list" if ints.get(4) == 3 else SCALARS.get(kind, "any")


def _messages(prefix: str, protos: list[bytes]) -> Iterator[tuple[str, bytes]]:
    for proto in protos:
        name = f"{prefix}.{_text(proto, 1)}"
        yield name, proto
        yield from _messages(name, _get(proto, 3))


def body_rules(descriptor: bytes) -> list[tuple[str, str, dict[str, str]]]:
    """(verb, path template, {json key: kind}) for each body "*" REST binding."""
    files = _get(descriptor, 1)
    messages = dict(m for f in files for m in _messages("." + _text(f, 2), _get(f, 4)))
    rules = []
    for file in files:
        for service in _get(file, 6):
            if f"{_text(file, 2)}.{_text(service, 1)}" not in SERVICES:
                continue
            for method in _get(service, 2):
                for options in _get(method, 4):
                    for rule in _get(options, HTTP_RULE_EXTENSION):
                        if _text(rule, 7) != "*":
                            continue
                        verb = next((n for n, _ in _fields(rule) if n in VERBS), 0)
                        if not verb:
                            continue
                        keys = {}
                        for field in _get(messages[_text(method, 2)], 2):
                            kind = _field_kind(field)
                            keys[_text(field, 1)] = keys[_text(field, 10)] = kind
                        keys.pop("", None)
                        rules.append((VERBS[verb], _text(rule, verb), keys))
    return rules


def lua_rules(rules: list[tuple[str, str, dict[str, str]]]) -> str:
    """The rules as a Lua table; path templates become anchored Lua patterns."""
    lines = ["BODY_RULES = {"]
    for verb, path, keys in rules:
        parts = re.split(r"\{[^}]*\}", path)
        escaped = [re.sub(r"([\^$()%.\[\]*+\-?])", r"%\1", p) for p in parts]
        pattern = "^" + "[^/]+".join(escaped) + "$"
        fields = ", ".join(f'["{k}"] = "{v}"' for k, v in sorted(keys.items()))
        lines.append(f'  {{"{verb}", "{pattern}", {{{fields}}}}},')
    return "\n".join([*lines, "}"])


def endpoints(spec: str) -> str:
    """A YAML flow list of lb_endpoints for comma-separated host:port replicas."""
    items = []
    for hostport in filter(None, (s.strip() for s in spec.split(","))):
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise SystemExit(f"not host:port: {hostport!r}")
        address = f"{{address: '{host.strip('[]')}', port_value: {int(port)}}}"
        items.append(f"{{endpoint: {{address: {{socket_address: {address}}}}}}}")
    if not items:
        raise SystemExit(f"no upstream in {spec!r}")
    return "[" + ", ".join(items) + "]"


def _static_route(
    path: str, match: str, file: Path, content_type: str, csp: str | None
) -> str:
    """One route answering GET and HEAD with a file, past the Lua filter and the
    transcoder (they are for the API; Lua would also buffer the whole file)."""
    if not file.is_file():
        sys.stderr.write(f"render.py: {file} is missing, {path} will answer 503\n")
        return f"- match: {match}\n  direct_response: {{status: 503}}"
    headers = [("content-type", f"{content_type}; charset=utf-8")]
    headers += [("cache-control", "no-cache"), ("x-content-type-options", "nosniff")]
    if csp:
        headers += [
            ("content-security-policy", csp),
            ("referrer-policy", "no-referrer"),
        ]
    added = ", ".join(
        f'{{header: {{key: {key}, value: "{value}"}}, '
        "append_action: OVERWRITE_IF_EXISTS_OR_ADD}"
        for key, value in headers
    )
    return "\n".join(
        [
            f"- match: {match}",
            f"  direct_response: {{status: 200, body: {{filename: '{file}'}}}}",
            f"  response_headers_to_add: [{added}]",
            f"  typed_per_filter_config: {PAST_THE_API}",
        ]
    )


def static_routes(args: argparse.Namespace) -> tuple[str, int]:
    """The routes of the served files, as YAML for the template, and the size of the
    largest file (Envoy refuses a direct response larger than its limit)."""
    get = '{name: ":method", string_match: {safe_regex: {regex: "GET|HEAD"}}}'
    index = Path(args.console_dir).resolve() / "index.html"
    # A browser landing on /auth/callback gets the console, which repeats the request
    # asking for JSON and keeps the token; API clients get the JSON of API.md.
    browser = (
        '{path: "/auth/callback", headers: [' + get + ", "
        '{name: accept, string_match: {contains: "text/html"}}, '
        '{name: accept, string_match: {contains: "application/json"}, '
        "invert_match: true}]}"
    )
    routes = [_static_route("/auth/callback", browser, index, HTML, CONSOLE_CSP)]
    sizes = [index.stat().st_size if index.is_file() else 0]
    for path, (flag, name), content_type, csp in STATIC:
        base = Path(getattr(args, flag)).resolve()
        file = base / name if name else base
        match = f'{{path: "{path}", headers: [{get}]}}'
        routes.append(_static_route(path, match, file, content_type, csp))
        sizes.append(file.stat().st_size if file.is_file() else 0)
    lines = "\n".join(routes).split("\n")
    return "\n".join(f"{ROUTE_INDENT}{line}" for line in lines), max(sizes)


def render(args: argparse.Namespace) -> str:
    """Fill the template from the parsed command line."""
    descriptor = Path(args.descriptor).resolve()
    lua = lua_rules(body_rules(descriptor.read_bytes()))
    routes, largest = static_routes(args)
    lua += "\n\n" + (HERE / "errors.lua").read_text()
    template = Template((HERE / "envoy.yaml.tmpl").read_text())
    return template.substitute(
        listen_port=args.listen_port,
        admin_port=args.admin_port,
        descriptor=descriptor,
        max_body_bytes=args.max_body_bytes,
        identity_endpoints=endpoints(args.identity),
        ledger_endpoints=endpoints(args.ledger),
        jobs_endpoints=endpoints(args.jobs),
        lua_code="\n".join(f"{INDENT}{line}".rstrip() for line in lua.split("\n")),
        static_routes=routes,
        max_file_bytes=max(largest, 4096),
    )


def main() -> None:
    """Parse the command line and write the rendered config."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--listen-port", type=int, default=8000)
    parser.add_argument("--admin-port", type=int, default=9901)
    parser.add_argument("--identity", required=True, help="host:port[,host:port...]")
    parser.add_argument("--ledger", required=True, help="host:port[,host:port...]")
    parser.add_argument("--jobs", required=True, help="host:port[,host:port...]")
    parser.add_argument("--descriptor", required=True, help="descriptor set (.pb)")
    parser.add_argument("--max-body-bytes", type=int, default=65536)
    parser.add_argument(
        "--console-dir", default=ROOT / "console", help="the web console's files"
    )
    parser.add_argument(
        "--openapi", default=ROOT / "build" / "openapi.json", help="OpenAPI document"
    )
    parser.add_argument(
        "--swagger-dir",
        default=ROOT / ".tools" / "node_modules" / "swagger-ui-dist",
        help="the swagger-ui-dist npm package",
    )
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args))


if __name__ == "__main__":
    main()
