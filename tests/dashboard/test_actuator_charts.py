"""A kit's actuators on its dashboard page: each actuator's latest level and a chart of its level
history (0-100 %, labelled by kind) beside the sensors' charts, from readings stored in the local
DynamoDB. The page through Django's test client, and the charts drawn in headless Chromium."""

import json

import pytest
from playwright.sync_api import expect

from kits.models import Role
from kits.registry import ActuatorSpec, kit_update

from .conftest import minutes_ago, reading_values, screenshot, sign_in, utc_now, wait_for_charts

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("telemetry_tables")]


def lit_values(moment, index: int) -> dict[str, float]:
    """The four sensors' values, the LED dimmed up a step every ten minutes, the fan on and off."""
    return {**reading_values(moment, index), "led": float(min(100, 10 * (index // 10))), "fan": 100.0 * (index % 2)}


@pytest.fixture
def lit_greenhouse(make_kit, users, write_readings):
    """A private kit of `owner` (with `viewer`) with a dimmable LED panel and an on/off fan, and
    60 readings of its sensors and actuators, one a minute."""
    kit = make_kit(owner=users["owner"], members={users["viewer"]: Role.VIEWER}, name="Lit greenhouse")
    kit_update(kit=kit, actuators=[ActuatorSpec("led", "light", True), ActuatorSpec("fan", "fan", False)])
    written = write_readings(kit, minutes_ago(utc_now(), *[i + 0.5 for i in range(60)]), values=lit_values)
    return kit, written


def chart_config(html: str) -> dict:
    marker = '<script id="kit-chart-config" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def test_the_kit_page_has_a_chart_and_the_latest_level_of_each_actuator(client, users, lit_greenhouse):
    kit, written = lit_greenhouse
    client.force_login(users["viewer"])

    html = client.get(f"/dashboard/kits/{kit.id}/").content.decode()

    assert chart_config(html)["actuators"] == [
        {"key": "fan", "label": "Fan", "unit": "%", "actuator": True},
        {"key": "led", "label": "Light: led", "unit": "%", "actuator": True},
    ]
    figure = html.split('id="chart-led"')[1].split("</figure>")[0]
    assert 'data-actuator="led"' in figure
    assert '<span class="chart-title">Light: led</span> <span class="chart-unit">(%)</span>' in figure
    newest = written[max(written)]
    latest = html.split('data-actuator="led"')[1].split("</div>")[0]
    assert f'<span class="value">{newest["led"]:g}</span>&nbsp;<span class="unit">%</span>' in latest


def test_a_kit_with_actuators_only_still_charts_them(client, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"], sensors=[])
    kit_update(kit=kit, actuators=[ActuatorSpec("pump", "pump")])
    write_readings(kit, minutes_ago(utc_now(), 2, 1), values=lambda moment, i: {"pump": 100.0 * i})
    client.force_login(users["owner"])

    html = client.get(f"/dashboard/kits/{kit.id}/").content.decode()

    assert 'id="no-sensors"' not in html
    assert 'id="chart-pump"' in html


def test_the_actuator_charts_draw_their_levels_beside_the_sensors(open_browser, lit_greenhouse):
    # Given a kit whose LED and fan levels are stored with its readings
    kit, written = lit_greenhouse
    page = open_browser()

    # When a member opens its page
    sign_in(page, "viewer", "pw-viewer")
    page.goto(f"/dashboard/kits/{kit.id}/?range=hour")
    wait_for_charts(page)

    # Then each actuator has a drawn chart of all its levels, on a 0-100 % scale, named by kind
    led = page.locator("#chart-led")
    expect(led).to_have_attribute("data-state", "drawn")
    assert led.get_attribute("data-point-count") == "60"
    assert led.get_attribute("data-axis-label") == "Light: led (%)"
    assert page.locator("#chart-fan").get_attribute("data-axis-label") == "Fan (%)"
    assert page.locator("#chart-fan").get_attribute("data-point-count") == "60"
    assert page.eval_on_selector("#chart-led", "f => [f.uplot.scales.y.min, f.uplot.scales.y.max]") == [0, 100]
    # beside the sensors' charts, which draw as before
    assert page.locator("#chart-temperature").get_attribute("data-point-count") == "60"
    # and its legend reads the level in percent at the newest point
    plot = page.locator("#chart-led .u-over")
    box = plot.bounding_box()
    plot.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})
    expect(page.locator("#chart-led .u-legend")).to_contain_text(f"{written[max(written)]['led']:g} %")
    screenshot(page, "kit-page-actuators")
