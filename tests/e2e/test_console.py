"""The web console in headless Chromium, logged in through the real mock provider.

Each test starts Debian's Chromium (Playwright cannot download a browser here) with
a fresh profile, lets it reach only the gateway and the identity provider, and saves
a screenshot of every tab it visits under test-output/screenshots/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from devclient import Person, register
from playwright.sync_api import (
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEXT = (
    "Credits are granted by admins. Credits are spent on calls. "
    "The weather was pleasant. Every call spends credits from the ledger."
)
GRANT_NOTE = (
    "Only organisation admins can grant credits. Ask your admin to grant credits to "
    "your organisation."
)
SUMMARISE_NOTE = (
    "Summarise creates an async background job. You receive a job ID instantly — "
    "switch to the Jobs tab to poll for the result."
)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"{CHROMIUM} is not installed (make install: apt-get install chromium)",
)

Browse = Callable[[], tuple[BrowserContext, Page, list[str]]]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver, once for the module."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def browse(
    playwright: Playwright, gateway: str, issuer: str, tmp_path: Path
) -> Iterator[Browse]:
    """Open a fresh Chromium: its context, its page and the URLs it was refused."""
    contexts: list[BrowserContext] = []

    def _browse() -> tuple[BrowserContext, Page, list[str]]:
        refused: list[str] = []
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / f"profile-{len(contexts)}"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1200, "height": 860},
        )
        contexts.append(context)

        def only_ours(route, request) -> None:  # the provider's page links a CDN
            if request.url.startswith((gateway, issuer)):
                route.continue_()
            else:
                refused.append(request.url)
                route.abort()

        context.route("**/*", only_ours)
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(15_000)
        return context, page, refused

    yield _browse
    for context in contexts:
        context.close()


def _screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _log_in(page: Page, gateway: str, issuer: str, email: str) -> Person:
    """Log in from the console's welcome page through the provider's consent form."""
    person = Person(
        sub=str(uuid.uuid4()), email=email, name=email.split("@")[0].title()
    )
    register(issuer, person)
    page.goto(f"{gateway}/")
    page.get_by_role("link", name="Log in with Google").click()
    page.locator("input[name=sub]").fill(person.sub)
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator("#console")).to_be_visible()
    return person


def _token(page: Page) -> str:
    return str(
        page.evaluate("JSON.parse(sessionStorage.getItem('tollgate.token')).token")
    )


def test_an_admin_grants_analyses_summarises_and_watches_the_job_in_the_console(
    browse: Browse, gateway: str, issuer: str, company: str
) -> None:
    """Overview, Credits, Text Analysis, Text Summarisation and Jobs, as an admin;
    Swagger UI then holds the console's token for "Try it out"."""
    context, page, _ = browse()
    _log_in(page, gateway, issuer, f"ada@{company}")

    assert page.url == f"{gateway}/"  # the callback's code is gone from the address
    expect(page.locator("#me-role")).to_have_text("admin")
    expect(page.locator("#me-email")).to_have_text(f"ada@{company}")
    expect(page.locator("#org-name")).to_have_text(company.split(".")[0].capitalize())
    expect(page.locator("#org-slug")).to_have_text(company.replace(".", "-"))
    token = _token(page)
    assert all(token not in cookie["value"] for cookie in context.cookies())
    _screenshot(page, "admin-overview")

    page.get_by_role("tab", name="Credits").click()
    expect(page.locator("#balance")).to_have_text("0")
    page.get_by_label("Amount").fill("100")
    page.get_by_label("Reason").fill("Welcome")
    page.get_by_role("button", name="Grant credits").click()
    expect(page.locator("#grant-result")).to_have_text(
        "Granted 100 credits. New balance: 100."
    )
    expect(page.locator("#balance")).to_have_text("100")
    expect(page.locator("#transactions tr").first).to_contain_text("Welcome")
    expect(page.locator("#transactions tr").first).to_contain_text("+100")
    _screenshot(page, "admin-credits")

    page.get_by_role("tab", name="Text Analysis").click()
    page.get_by_label("Text to analyse").fill("The cat and the hat.")
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#analyse-result")).to_have_text(
        "Analysis complete. Word count: 5. Unique words: 4. Credits remaining: 75."
    )
    _screenshot(page, "admin-text-analysis")

    page.get_by_role("tab", name="Text Summarisation").click()
    expect(page.locator("#panel-summarise .note")).to_have_text(SUMMARISE_NOTE)
    page.get_by_label("Text to summarise").fill(TEXT)
    page.get_by_role("button", name="Summarise", exact=True).click()
    job_id = page.locator("#summarise-job-id").inner_text()
    assert UUID.match(job_id)
    expect(page.locator("#summarise-result")).to_contain_text("Credits remaining: 65.")
    _screenshot(page, "admin-text-summarisation")

    page.get_by_role("button", name="Watch it in the Jobs tab").click()
    expect(page.get_by_role("tab", name="Jobs")).to_have_attribute(
        "aria-selected", "true"
    )
    expect(page.locator("#job-show-id")).to_have_text(job_id)
    expect(page.locator("#job-status")).to_have_text("completed", timeout=20_000)
    summary = page.locator("#job-output").inner_text()
    sentences = [s.strip() for s in TEXT.split(".") if s.strip()]
    assert summary
    assert all(part.strip() in sentences for part in summary.split(".") if part.strip())
    expect(page.locator("#job-list")).to_contain_text(job_id)
    _screenshot(page, "admin-jobs")

    balance = httpx.get(
        f"{gateway}/api/credits/balance", headers={"authorization": f"Bearer {token}"}
    ).json()
    assert balance["balance"] == 65
    assert [t["amount"] for t in balance["recent_transactions"]] == [-10, -25, 100]

    page.get_by_role("link", name="API docs (Swagger UI)").click()
    authorize = page.locator(".auth-wrapper .authorize")
    expect(authorize).to_have_class(re.compile(r"\blocked\b"))  # the console's token
    _screenshot(page, "admin-docs")


def test_a_member_sees_the_grant_form_disabled_and_spends_the_admins_credits(
    browse: Browse, gateway: str, issuer: str, company: str, log_in
) -> None:
    """A member cannot grant (the form says why), is told when credits run out, and
    can spend what the admin granted."""
    admin = log_in(f"ada@{company}")
    _, page, _ = browse()
    _log_in(page, gateway, issuer, f"bob@{company}")
    expect(page.locator("#me-role")).to_have_text("member")
    _screenshot(page, "member-overview")

    page.get_by_role("tab", name="Credits").click()
    expect(page.get_by_label("Amount")).to_be_disabled()
    expect(page.get_by_label("Reason")).to_be_disabled()
    expect(page.get_by_role("button", name="Grant credits")).to_be_disabled()
    note = page.locator("#grant-note")
    expect(note).to_be_visible()
    assert " ".join(note.inner_text().split()) == GRANT_NOTE
    _screenshot(page, "member-credits")

    page.get_by_role("tab", name="Text Analysis").click()
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#analyse-result")).to_contain_text("Balance: 0, required: 25.")
    expect(page.locator("#analyse-result")).to_have_class(re.compile("error"))
    _screenshot(page, "member-text-analysis-refused")

    granted = admin.post("/api/credits/grant", json={"amount": 50, "reason": "Team"})
    assert granted.status_code == 200
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("#analyse-result")).to_have_text(
        "Analysis complete. Word count: 5. Unique words: 4. Credits remaining: 25."
    )
    _screenshot(page, "member-text-analysis")


def test_a_denied_login_brings_the_browser_back_to_the_welcome_page_with_the_reason(
    browse: Browse, gateway: str, issuer: str
) -> None:
    """Deny at the provider: the console shows the google_auth_failed message."""
    _, page, _ = browse()
    page.goto(f"{gateway}/")
    page.get_by_role("link", name="Log in with Google").click()
    page.get_by_role("button", name="Deny").click()

    expect(page.locator("#flash")).to_contain_text("Login failed")
    expect(page.get_by_role("link", name="Log in with Google")).to_be_visible()
    assert page.url == f"{gateway}/"
    assert page.evaluate("sessionStorage.getItem('tollgate.token')") is None
    _screenshot(page, "login-denied")


def test_the_console_and_swagger_ui_load_nothing_from_another_origin(
    browse: Browse, gateway: str
) -> None:
    """Every request of / and /docs goes to the gateway, and Swagger UI renders the
    generated document without a console error (a CSP violation would be one)."""
    _, page, refused = browse()
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{gateway}/")
    expect(page.get_by_role("link", name="Log in with Google")).to_be_visible()
    _screenshot(page, "welcome")
    page.get_by_role("link", name="API docs (Swagger UI)").click()
    expect(
        page.locator(".opblock-summary-path", has_text="/api/credits/grant")
    ).to_be_visible()
    expect(
        page.locator(".opblock-summary-path", has_text="/api/summarise")
    ).to_be_visible()
    _screenshot(page, "docs")

    assert refused == []
    assert requested and all(url.startswith(f"{gateway}/") for url in requested)
    assert f"{gateway}/openapi.json" in requested
    assert errors == []
