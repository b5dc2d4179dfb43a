"""The kit page's configuration section in headless Chromium: a configurer changes the kit's
configuration through the form (the same API the mobile app uses), sees each refused field
explained beside it, sees the mark turn from pending to applied by itself when the kit reports,
reads the version history and pings the kit; a viewer reads the configuration only.

The kit's side is played by the services the ingest bridge calls when a kit's report or answer
arrives (control.services), so the page is tested apart from the broker; the whole path with
real processes is tests/control/test_two_way_end_to_end.py."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from control import services as control_services
from control.models import Command
from kits.models import Role
from kits.registry import ActuatorSpec, kit_update
from tests.support import wait_until

from .conftest import screenshot, sign_in

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("telemetry_tables")]


@pytest.fixture
def greenhouse(make_kit, users):
    kit = make_kit(
        owner=users["owner"],
        members={users["configurer"]: Role.CONFIGURER, users["viewer"]: Role.VIEWER},
        name="Configured greenhouse",
    )
    kit_update(kit=kit, actuators=[ActuatorSpec("led", "light", True), ActuatorSpec("fan", "fan", False)])
    return kit


def open_kit_page(open_browser, kit, username: str):
    page = open_browser()
    sign_in(page, username, f"pw-{username}")
    page.goto(f"/dashboard/kits/{kit.id}/")
    expect(page.locator("#configuration")).to_have_attribute("data-state", "ready")
    return page


def test_a_configurer_changes_the_configuration_and_sees_the_kit_apply_it(open_browser, greenhouse):
    page = open_kit_page(open_browser, greenhouse, "configurer")
    section = page.locator("#configuration")
    expect(page.locator("#config-status")).to_have_text("Defaults")

    # When the configurer measures every 30 s, puts the LED panel on a schedule and the fan on a
    # thermostat, and saves
    section.get_by_label("Seconds between measurements").fill("30")
    led = section.locator('[data-actuator="led"]')
    led.get_by_label("Mode").select_option("schedule")
    led.get_by_label("From").fill("07:00")
    led.get_by_label("To").fill("21:00")
    led.get_by_label("Level (%)").fill("70")
    fan = section.locator('[data-actuator="fan"]')
    fan.get_by_label("Mode").select_option("thermostat")
    fan.get_by_label("Sensor").select_option("temperature")
    fan.get_by_label("Switch on at").fill("27")
    fan.get_by_label("Switch off at").fill("25.5")
    section.get_by_role("button", name="Save and send to the kit").click()

    # Then version 1 is stored exactly as asked, pending until the kit says otherwise
    expect(page.locator("#config-message")).to_contain_text("Saved as version 1")
    expect(page.locator("#config-status")).to_have_attribute("data-status", "pending")
    state = greenhouse.configuration_versions.get(version=1)
    assert state.desired["interval_seconds"] == 30
    assert state.desired["actuators"] == {
        "led": {"mode": "schedule", "periods": [{"from": "07:00", "to": "21:00", "level": 70}]},
        "fan": {"mode": "thermostat", "sensor": "temperature", "on_above": 27.0, "off_below": 25.5, "level": 100},
    }
    expect(page.locator('#config-history-list [data-version="1"]')).to_contain_text("configurer")

    # When the kit reports it applied version 1, the mark turns by itself
    control_services.configuration_reported(
        kit_id=greenhouse.id, version=1, status="applied", reason=None, reported_at=timezone.now()
    )
    expect(page.locator("#config-status")).to_have_attribute("data-status", "applied", timeout=10_000)
    expect(page.locator("#config-status")).to_have_text("Applied by the kit")
    screenshot(page, "kit-configuration-applied")


def test_a_refused_configuration_is_explained_beside_each_field(open_browser, greenhouse):
    page = open_kit_page(open_browser, greenhouse, "owner")
    section = page.locator("#configuration")
    # Given two overlapping periods and an interval below the least
    section.get_by_label("Seconds between measurements").fill("1")
    led = section.locator('[data-actuator="led"]')
    led.get_by_label("Mode").select_option("schedule")
    led.get_by_role("button", name="Add a period").click()
    led.get_by_label("From").nth(1).fill("21:00")
    led.get_by_label("To").nth(1).fill("23:00")
    section.get_by_role("button", name="Save and send to the kit").click()

    # Then nothing is stored and each problem stands beside its field
    expect(section).to_have_attribute("data-state", "error")
    expect(section.locator('[data-error-for="desired.interval_seconds"]')).to_contain_text("2 to 3600, not 1")
    expect(section.locator('[data-error-for="desired.actuators.led.periods.1"]')).to_contain_text("Overlaps period 0")
    assert section.get_by_label("Seconds between measurements").get_attribute("aria-invalid") == "true"
    assert not greenhouse.configuration_versions.exists()


def test_a_rejected_configuration_shows_the_kits_reason(open_browser, greenhouse, users):
    control_services.configuration_change(kit=greenhouse, desired={"interval_seconds": 10}, user=users["owner"])
    control_services.configuration_reported(
        kit_id=greenhouse.id, version=1, status="rejected", reason="no driver for led", reported_at=timezone.now()
    )
    page = open_kit_page(open_browser, greenhouse, "viewer")

    expect(page.locator("#config-status")).to_have_attribute("data-status", "rejected")
    expect(page.locator("#config-reason")).to_have_text("The kit said: no driver for led")


def test_a_viewer_reads_the_configuration_but_cannot_change_it(open_browser, greenhouse):
    page = open_kit_page(open_browser, greenhouse, "viewer")
    section = page.locator("#configuration")

    expect(section.get_by_label("Seconds between measurements")).to_have_value("60")
    expect(section.get_by_label("Seconds between measurements")).to_be_disabled()
    expect(section.locator('[data-actuator="led"]').get_by_label("Mode")).to_be_disabled()
    expect(section.get_by_role("button", name="Save and send to the kit")).to_have_count(0)
    expect(page.get_by_role("button", name="Ping kit")).to_have_count(0)


def test_ping_shows_the_kits_answer(open_browser, greenhouse):
    page = open_kit_page(open_browser, greenhouse, "owner")
    page.get_by_role("button", name="Ping kit").click()

    # When the kit answers the ping the page sent
    expect(page.locator("#ping-result")).to_have_attribute("data-status", "queued")
    wait_until(lambda: Command.objects.filter(kit=greenhouse, name="ping").exists(), what="the ping command")
    command = Command.objects.get(kit=greenhouse, name="ping")
    control_services.command_result_record(
        kit_id=greenhouse.id,
        command_id=str(command.id),
        status="succeeded",
        result={"uptime_seconds": 7200, "software_version": "1.2.3"},
        reason=None,
        answered_at=timezone.now(),
    )

    # Then the page says so
    expect(page.locator("#ping-result")).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(page.locator("#ping-result")).to_contain_text("up 2.0 h, software 1.2.3")
