"""The OpenAPI document, Swagger UI and the console files the gateway serves."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from gen_openapi import document  # tools/, on the path through tests/conftest.py
from openapi_spec_validator import validate

ROOT = Path(__file__).resolve().parents[2]

API_MD = ROOT.parent / "shared" / "spec" / "API.md"
# Every route of API.md's "Endpoints" section, as (method, OpenAPI path).
PUBLIC_ROUTES = {
    ("get", "/auth/google"),
    ("get", "/auth/callback"),
    ("get", "/api/me"),
    ("post", "/api/credits/grant"),
    ("get", "/api/credits/balance"),
    ("post", "/api/analyse"),
    ("post", "/api/summarise"),
    ("get", "/api/jobs/{job_id}"),
    ("get", "/health"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/"),
    ("get", "/docs"),
    ("get", "/openapi.json"),
}
BROWSER_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,*/*;q=0.8"
)


class _Assets(HTMLParser):
    """Collects the URLs a page loads: scripts, stylesheets, images, frames."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img", "iframe") and values.get("src"):
            self.urls.append(str(values["src"]))
        if tag == "link" and values.get("href"):
            self.urls.append(str(values["href"]))


def _assets(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def _operations(spec: dict) -> set[tuple[str, str]]:
    return {(verb, path) for path, item in spec["paths"].items() for verb in item}


def test_the_openapi_document_is_valid_openapi_3_1(anonymous: httpx.Client) -> None:
    """GET /openapi.json is JSON that openapi-spec-validator accepts as OpenAPI 3.1."""
    response = anonymous.get("/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    spec = response.json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_the_openapi_document_lists_every_public_route_and_no_internal_one(
    anonymous: httpx.Client,
) -> None:
    """Every route of API.md is there; Charge, Refund and ListTransactions are not."""
    spec = anonymous.get("/openapi.json").json()

    assert _operations(spec) == PUBLIC_ROUTES
    operation_ids = {
        op["operationId"] for item in spec["paths"].values() for op in item.values()
    }
    assert not operation_ids & {"Charge", "Refund", "ListTransactions"}


def test_the_route_list_of_these_tests_is_the_one_of_api_md() -> None:
    """The routes checked above are exactly the headings of API.md's endpoints."""
    if not API_MD.is_file():
        pytest.skip(f"{API_MD} is not beside the repository")
    headings = re.findall(r"^### (.+)$", API_MD.read_text(), flags=re.MULTILINE)
    routes = set()
    for heading in headings:
        for verb, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) ([^`?]+)", heading):
            routes.add((verb.lower(), path))

    assert routes == PUBLIC_ROUTES


def test_the_served_document_is_the_one_generated_from_the_descriptor_set(
    anonymous: httpx.Client,
) -> None:
    """/openapi.json is what tools/gen_openapi.py makes of build/tollgate.pb."""
    generated = document((ROOT / "build" / "tollgate.pb").read_bytes())

    assert anonymous.get("/openapi.json").json() == generated


def test_each_endpoint_documents_its_errors_in_the_envelope(
    anonymous: httpx.Client,
) -> None:
    """The statuses of API.md per endpoint, each with the envelope and its codes."""
    spec = anonymous.get("/openapi.json").json()
    paths = spec["paths"]

    def codes(path: str, verb: str, status: str) -> list[str]:
        response = paths[path][verb]["responses"][status]
        schema = response["content"]["application/json"]["schema"]
        assert schema["allOf"][0] == {"$ref": "#/components/schemas/ErrorEnvelope"}
        return schema["allOf"][1]["properties"]["detail"]["properties"]["error"]["enum"]

    assert set(paths["/api/analyse"]["post"]["responses"]) >= {
        "200", "401", "402", "409", "422", "503"
    }  # fmt: skip
    assert codes("/api/analyse", "post", "402") == ["insufficient_credits"]
    assert set(codes("/api/analyse", "post", "422")) == {
        "validation_error",
        "idempotency_key_reused",
    }
    assert codes("/api/credits/grant", "post", "403") == ["forbidden"]
    assert codes("/api/jobs/{job_id}", "get", "404") == ["job_not_found"]
    assert codes("/auth/callback", "get", "400") == ["google_auth_failed"]
    assert "302" in paths["/auth/google"]["get"]["responses"]
    envelope = spec["components"]["schemas"]["ErrorEnvelope"]
    assert envelope["required"] == ["detail"]
    assert envelope["properties"]["detail"]["required"] == ["error", "message"]


def test_schemas_follow_the_gateways_json_and_the_proto_comments(
    anonymous: httpx.Client,
) -> None:
    """Proto field names, int32 as integer, Timestamp as date-time, Value nullable,
    buf.validate limits, comments as descriptions, unknown body keys refused."""
    spec = anonymous.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    job = schemas["GetJobResponse"]["properties"]
    grant = spec["paths"]["/api/credits/grant"]["post"]

    assert set(job) == {"job_id", "status", "result", "error", "created_at"}
    assert job["created_at"]["type"] == "string"
    assert job["created_at"]["format"] == "date-time"
    assert "null" in job["result"]["type"]
    assert schemas["GetBalanceResponse"]["properties"]["balance"]["type"] == "integer"
    body = grant["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False
    assert body["properties"]["amount"]["minimum"] == 1
    assert body["properties"]["reason"]["maxLength"] == 500
    assert body["properties"]["reason"]["description"].startswith("Why the credits")
    assert grant["description"].startswith("Grant adds credits")
    assert grant["security"] == [{"bearerAuth": []}]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in grant["parameters"]


def test_swagger_ui_is_html_that_loads_only_same_origin_assets(
    anonymous: httpx.Client,
) -> None:
    """/docs and the console load nothing from another origin, and every asset is
    served with its type; the pages' policy forbids other origins too."""
    for page in ("/docs", "/"):
        response = anonymous.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        urls = _assets(response.text)
        assert urls, page
        for url in urls:
            if url.startswith("data:"):
                continue
            parts = urlsplit(url)
            assert not parts.scheme and not parts.netloc, url
            assert url.startswith("/"), url
            asset = anonymous.get(url)
            assert asset.status_code == 200, url
            expected = "text/css" if url.endswith(".css") else "text/javascript"
            assert asset.headers["content-type"].startswith(expected), url
    assert "swagger-ui-bundle.js" in anonymous.get("/docs").text


def test_a_browser_on_the_callback_gets_the_console_and_api_clients_get_json(
    anonymous: httpx.Client,
) -> None:
    """Accept decides: text/html without application/json is the console page;
    */*, no Accept, or application/json get the JSON contract of API.md."""
    query = "/auth/callback?code=x&state=unknown"

    page = anonymous.get(query, headers={"accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/console/app.js" in page.text

    for accept in ("*/*", "application/json", "text/html, application/json", None):
        headers = {"accept": accept} if accept else {}
        if accept is None:
            request = anonymous.build_request("GET", query)
            del request.headers["accept"]
            response = anonymous.send(request)
        else:
            response = anonymous.get(query, headers=headers)
        assert response.status_code == 400, accept
        assert response.json()["detail"]["error"] == "google_auth_failed", accept


def test_served_files_answer_only_get_and_head(anonymous: httpx.Client) -> None:
    """HEAD / is 200 without a body; POST / is the 404 envelope."""
    head = anonymous.head("/")
    posted = anonymous.post("/", json={})

    assert head.status_code == 200
    assert head.content == b""
    assert posted.status_code == 404
    assert posted.json()["detail"]["error"] == "not_found"
