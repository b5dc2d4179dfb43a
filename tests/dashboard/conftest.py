"""Fixtures for the dashboard's tests: kits with members and stored readings in the real local
DynamoDB (moto_server), written through the telemetry service exactly as the ingest bridge does."""

import itertools
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from kits import memberships, registry
from kits.models import Role
from kits.registry import SensorSpec

FOUR_SENSORS = [
    SensorSpec("temperature", "temperature", "°C", -10, 50),
    SensorSpec("humidity", "humidity", "%", 0, 100),
    SensorSpec("co2", "co2", "ppm", 200, 5000),
    SensorSpec("light", "light", "lux", 0, 100000),
]

_kit_numbers = itertools.count(1)


@pytest.fixture
def grower(db):
    return get_user_model().objects.create_user("grower", "Grower@Example.org", "pw-grower")


@pytest.fixture
def make_kit(db):
    """`make_kit(owner=user, public=False, sensors=FOUR_SENSORS, members={user: role})`: a kit
    registered through the kit service, with its owner and members."""

    def make(*, owner=None, public=False, sensors=FOUR_SENSORS, name=None, members=None):
        number = next(_kit_numbers)
        kit = registry.kit_register(
            id=f"dash-kit-{number}",
            name=name or f"Dashboard kit {number}",
            description="A kit for the dashboard tests.",
            public=public,
            sensors=sensors,
        )
        if owner is not None:
            memberships.membership_add(kit=kit, username=owner.username, role=Role.OWNER)
        for user, role in (members or {}).items():
            memberships.membership_add(kit=kit, username=user.username, role=role)
        return kit

    return make


def reading_values(moment: datetime, index: int) -> dict[str, float]:
    """Plausible, slowly changing values, a little different at every instant."""
    return {
        "temperature": round(21 + 3 * math.sin(index / 40), 2),
        "humidity": round(60 - 10 * math.sin(index / 40), 1),
        "co2": float(round(600 + 80 * math.cos(index / 25))),
        "light": float(round(max(0.0, 20000 * math.sin(index / 60)))),
    }


@pytest.fixture
def write_readings(telemetry_tables):
    """`write_readings(kit, moments)`: stores one reading of every sensor per moment through
    telemetry.services.readings_write; returns {moment: values}."""
    from telemetry.services import Reading, readings_write

    def write(kit, moments, values=reading_values):
        written = {moment: values(moment, index) for index, moment in enumerate(moments)}
        readings_write(readings=[Reading(kit.id, moment, vals) for moment, vals in written.items()])
        return written

    return write


def minutes_ago(now: datetime, *minutes: float) -> list[datetime]:
    """Moments `minutes` before `now`, oldest first, to the millisecond (DynamoDB keeps ms)."""
    moments = [now - timedelta(minutes=m) for m in minutes]
    return sorted(m.replace(microsecond=m.microsecond // 1000 * 1000) for m in moments)


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- the browser ---------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium as root in a closed network: no sandbox (root), and no background
# connections, which this machine refuses many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
UPLOT = Path(__file__).resolve().parents[2] / "static" / "vendor" / "uplot" / "uPlot.iife.min.js"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def chromium():
    """Debian's headless Chromium driven by Playwright, for the whole session."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("The browser tests need Debian's Chromium: apt-get install -y chromium")
    if not UPLOT.exists():
        pytest.fail("The chart library is missing from static/vendor/: run `make static`")
    # Playwright's sync API runs an event loop in this thread, which Django takes for async
    # code and then refuses ORM calls; the tests' own ORM calls are plain synchronous code.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_browser(chromium, live_server):
    """`open_browser(viewport=DESKTOP, timezone_id="UTC", locale="en-US")`: a fresh browser context
    (no cookies) on the live server, its clock in `timezone_id` whatever the machine's; returns its
    page. Screenshots go to test-artifacts/dashboard/."""
    contexts = []

    def open_page(viewport=DESKTOP, timezone_id="UTC", locale="en-US"):
        context = chromium.new_context(
            base_url=live_server.url,
            viewport=viewport,
            accept_downloads=True,
            timezone_id=timezone_id,
            locale=locale,
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page, username: str, password: str) -> None:
    """Signs in through the sign-in page, as a person would."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def wait_for_charts(page, *, loads: int = 1) -> None:
    """Waits until the kit page's script has finished `loads` loads and drawn every chart."""
    page.wait_for_function(
        "n => { const c = document.getElementById('charts');"
        " return c && Number(c.dataset.loads) >= n && c.dataset.state !== 'loading'; }",
        arg=loads,
    )


def drawn_point_counts(page) -> dict[str, int]:
    return page.eval_on_selector_all(
        "#charts figure[data-sensor]",
        "figures => Object.fromEntries(figures.map(f => [f.dataset.sensor, Number(f.dataset.pointCount)]))",
    )
