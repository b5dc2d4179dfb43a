"""The dashboard in a real browser: headless Debian Chromium driven by Playwright against the live
server, with readings stored in the local DynamoDB through the telemetry service. Screenshots of
the main pages are saved under test-artifacts/dashboard/."""

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from kits.models import Role

from .conftest import (
    PHONE,
    drawn_point_counts,
    minutes_ago,
    screenshot,
    sign_in,
    utc_now,
    wait_for_charts,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("telemetry_tables")]

SENSORS = {"co2", "humidity", "light", "temperature"}


@pytest.fixture
def greenhouse(make_kit, users, write_readings):
    """A private kit of `owner` (with `viewer`) and 90 readings of its four sensors, one a
    minute, each half a minute off the minute so none sits on a range's edge."""
    kit = make_kit(owner=users["owner"], members={users["viewer"]: Role.VIEWER}, name="Greenhouse tomatoes")
    written = write_readings(kit, minutes_ago(utc_now(), *[i + 0.5 for i in range(90)]))
    return kit, written


def test_grower_signs_in_sees_the_kit_list_and_the_charts_draw_the_stored_points(open_browser, greenhouse):
    kit, written = greenhouse
    page = open_browser()

    sign_in(page, "owner", "pw-owner")

    card = page.locator(f'article[data-kit-id="{kit.id}"]')
    expect(card).to_contain_text("Greenhouse tomatoes")
    expect(card).to_contain_text("Online")
    newest = written[max(written)]
    expect(card.locator('[data-sensor="temperature"] dd')).to_have_text(f"{newest['temperature']:g}\xa0°C")
    screenshot(page, "kit-list")

    card.get_by_role("link", name="Greenhouse tomatoes").click()
    page.wait_for_url(f"**/dashboard/kits/{kit.id}/")
    wait_for_charts(page)

    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, 90)
    assert page.locator("#charts").get_attribute("data-resolution") == "raw"
    assert page.locator("#chart-temperature").get_attribute("data-axis-label") == "Temperature (°C)"
    screenshot(page, "kit-page")


def test_hovering_a_chart_shows_the_exact_value_and_time(open_browser, greenhouse):
    kit, written = greenhouse
    page = open_browser()
    sign_in(page, "viewer", "pw-viewer")
    page.goto(f"/dashboard/kits/{kit.id}/?range=hour")
    wait_for_charts(page)

    plot = page.locator("#chart-temperature .u-over")
    box = plot.bounding_box()
    plot.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})

    legend = page.locator("#chart-temperature .u-legend")
    newest = max(written)
    # The right edge is the newest reading: its exact value, unit and time.
    expect(legend).to_contain_text(f"{written[newest]['temperature']:g} °C")
    expect(legend).to_contain_text(f"{newest:%H:%M:%S} UTC")
    screenshot(page, "kit-page-hover")


def test_changing_the_range_redraws_with_the_points_of_that_range(open_browser, greenhouse):
    kit, written = greenhouse
    page = open_browser()
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/")
    wait_for_charts(page)

    page.get_by_text("Last hour", exact=True).click()
    wait_for_charts(page, loads=2)

    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, 60)
    assert "range=hour" in page.url

    # A custom range, given to the minute in UTC: from 40 to 20 minutes ago.
    now = utc_now()
    start = (now - timedelta(minutes=40)).replace(second=0, microsecond=0)
    end = (now - timedelta(minutes=20)).replace(second=0, microsecond=0)
    page.get_by_text("Custom", exact=True).click()
    page.get_by_label("From").fill(f"{start:%Y-%m-%dT%H:%M}")
    page.get_by_label("To", exact=True).fill(f"{end:%Y-%m-%dT%H:%M}")
    page.get_by_role("button", name="Show range").click()
    wait_for_charts(page, loads=3)

    expected = sum(1 for moment in written if start <= moment < end)
    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, expected)
    assert "range=custom" in page.url


def test_a_range_the_data_api_refuses_is_explained(open_browser, greenhouse):
    kit, _ = greenhouse
    page = open_browser()
    sign_in(page, "owner", "pw-owner")

    page.goto(f"/dashboard/kits/{kit.id}/?range=custom&from=2000-01-01T00:00&to=2026-01-01T00:00")
    wait_for_charts(page)

    assert page.locator("#charts").get_attribute("data-state") == "error"
    expect(page.locator("#chart-status")).to_contain_text("Could not load the readings")
    expect(page.locator("#chart-status")).to_contain_text("days")  # the API's own reason: the range is too long
    screenshot(page, "kit-page-range-refused")


def test_downloaded_csv_holds_the_shown_range(open_browser, greenhouse):
    kit, written = greenhouse
    page = open_browser()
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/?range=hour")
    wait_for_charts(page)

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    rows = list(csv.DictReader(io.StringIO(Path(download_info.value.path()).read_text(encoding="utf-8"))))

    shown = [moment for moment in sorted(written) if moment > utc_now() - timedelta(minutes=60)]
    assert len(rows) == 4 * 60 == 4 * len(shown)
    temperatures = [row for row in rows if row["sensor"] == "temperature"]
    assert [float(row["value"]) for row in temperatures] == [written[m]["temperature"] for m in shown]
    assert {row["unit"] for row in temperatures} == {"°C"}
    assert [row["timestamp"] for row in temperatures] == [wire_time(m) for m in shown]


def wire_time(moment) -> str:
    """ISO 8601 UTC with `Z`, with milliseconds when there are any."""
    milliseconds = moment.microsecond // 1000
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{milliseconds:03d}Z" if milliseconds else "Z")


def test_a_long_range_draws_hourly_rollups_with_their_min_and_max(open_browser, make_kit, users, write_readings):
    # 2,160 readings in three days: more than the ~2,000 points a chart may draw, so `auto`
    # answers with hourly rollups.
    kit = make_kit(owner=users["owner"], public=True)
    now = utc_now()
    written = write_readings(kit, minutes_ago(now, *[2 * i + 0.5 for i in range(2160)]))
    hours = {moment.replace(minute=0, second=0, microsecond=0) for moment in written}
    page = open_browser()

    page.goto(f"/dashboard/kits/{kit.id}/?range=week")
    wait_for_charts(page)

    assert page.locator("#charts").get_attribute("data-resolution") == "1h"
    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, len(hours))
    legend = page.locator("#chart-temperature .u-legend")
    expect(legend).to_contain_text("Min")
    expect(legend).to_contain_text("Max")
    # Each hour's mean drawn inside a band from its min to its max: the band is filled between the
    # max and min series, which hold exactly the stored readings' extremes of that hour.
    chart = chart_series(page, "temperature")
    assert chart["labels"] == ["Time", "Mean", "Min", "Max"]
    assert chart["bands"] == [[3, 2]]
    assert chart["bandFilled"]
    temperatures = defaultdict(list)
    for moment, values in written.items():
        temperatures[moment.replace(minute=0, second=0, microsecond=0).timestamp()].append(values["temperature"])
    drawn = {t: (low, high) for t, low, high in zip(chart["times"], chart["mins"], chart["maxs"], strict=True)}
    assert drawn == {t: (min(v), max(v)) for t, v in temperatures.items()}
    means = [mean for mean in chart["means"] if mean is not None]
    assert all(low <= mean <= high for (low, high), mean in zip(drawn.values(), means, strict=True))
    screenshot(page, "kit-page-week-rollups")

    # The last hour of the same kit is raw readings again: one line, the band gone.
    page.get_by_text("Last hour", exact=True).click()
    wait_for_charts(page, loads=2)
    assert page.locator("#charts").get_attribute("data-resolution") == "raw"
    assert chart_series(page, "temperature")["labels"] == ["Time", "Temperature"]
    assert chart_series(page, "temperature")["bands"] == []


def test_a_raw_range_draws_one_line_without_a_band(open_browser, greenhouse):
    kit, _ = greenhouse
    page = open_browser()
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/?range=hour")
    wait_for_charts(page)

    assert page.locator("#charts").get_attribute("data-resolution") == "raw"
    chart = chart_series(page, "temperature")
    assert chart["labels"] == ["Time", "Temperature"]
    assert chart["bands"] == []
    expect(page.locator("#chart-temperature .u-legend")).not_to_contain_text("Min")


def chart_series(page, sensor: str) -> dict:
    """What one sensor's uPlot chart holds: its series' labels, its bands (as [upper, lower]
    series), whether a band has a fill, and its columns."""
    return page.locator(f"#chart-{sensor}").evaluate(
        """f => ({
            labels: f.uplot.series.map(s => s.label),
            bands: f.uplot.bands.map(b => b.series),
            bandFilled: f.uplot.bands.every(b => b.fill != null),
            times: f.uplot.data[0], means: f.uplot.data[1], mins: f.uplot.data[2], maxs: f.uplot.data[3],
        })"""
    )


def test_public_kit_charts_draw_for_a_visitor_on_a_phone(open_browser, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"], public=True, name="Classroom lettuce")
    write_readings(kit, minutes_ago(utc_now(), *[i + 0.5 for i in range(30)]))
    page = open_browser(viewport=PHONE)

    page.goto("/")
    screenshot(page, "kit-list-public-phone")
    page.get_by_role("link", name="Classroom lettuce").click()
    wait_for_charts(page)

    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, 30)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the page scrolls sideways on a phone"
    screenshot(page, "kit-page-phone")


def test_the_last_hour_refreshes_by_itself(open_browser, greenhouse, write_readings, settings):
    settings.DASHBOARD_REFRESH_SECONDS = 1
    kit, _ = greenhouse
    page = open_browser()
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/?range=hour")
    wait_for_charts(page)
    assert drawn_point_counts(page)["temperature"] == 60

    write_readings(kit, [utc_now() - timedelta(seconds=5)])

    # A function, not an expression: Playwright evaluates an expression with eval(), which the page's
    # Content-Security-Policy forbids.
    page.wait_for_function("() => document.getElementById('chart-temperature').dataset.pointCount === '61'")
    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, 61)


def test_a_non_member_is_refused_a_private_kit(open_browser, greenhouse):
    kit, _ = greenhouse
    page = open_browser()
    sign_in(page, "nonmember", "pw-nonmember")

    response = page.goto(f"/dashboard/kits/{kit.id}/")

    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Nothing here")
    expect(page.locator("body")).not_to_contain_text("Greenhouse tomatoes")
    screenshot(page, "private-kit-refused")
    data = page.request.get(f"/kits/{kit.id}/data")
    assert data.status == 404


def test_empty_states_say_what_to_do(open_browser, make_kit, users):
    kit = make_kit(owner=users["owner"], name="Fresh kit")
    page = open_browser()

    sign_in(page, "nonmember", "pw-nonmember")
    expect(page.get_by_role("heading", name="You have no kits yet")).to_be_visible()
    screenshot(page, "no-kits")

    page.context.clear_cookies()
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/")
    expect(page.get_by_role("heading", name="No readings yet")).to_be_visible()
    screenshot(page, "no-readings")


def test_owner_adds_a_member_by_email(open_browser, greenhouse):
    kit, _ = greenhouse
    page = open_browser()
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/")
    page.get_by_role("link", name="Manage members").click()

    page.get_by_label("Username or e-mail").fill("nonmember@example.org")
    page.get_by_label("Role", exact=True).select_option("configurer")
    page.get_by_role("button", name="Add member").click()

    expect(page.get_by_role("status")).to_contain_text("nonmember is now a configurer of Greenhouse tomatoes.")
    expect(page.locator('tr[data-member="nonmember"] select')).to_have_value("configurer")
    screenshot(page, "members")
    page.set_viewport_size(PHONE)
    screenshot(page, "members-phone")


NEW_YORK = ZoneInfo("America/New_York")


def shown_recent(moment, zone) -> str:
    """How the page shows a recent time in `zone`: the clock and the zone's name for a time of
    today, else the date too."""
    local = moment.astimezone(zone)
    if local.date() == utc_now().astimezone(zone).date():
        return f"{local:%H:%M %Z}"
    return f"{local.day} {local:%b %Y, %H:%M %Z}"


def test_times_are_shown_in_the_viewers_time_zone_with_its_name(open_browser, greenhouse):
    # Given a viewer whose browser is in New York
    kit, written = greenhouse
    newest = max(written)
    page = open_browser(timezone_id="America/New_York")

    # When they sign in, the kit list shows the last reading's time in New York's time, named
    sign_in(page, "owner", "pw-owner")
    card = page.locator(f'article[data-kit-id="{kit.id}"]')
    expect(card.locator(".last-seen time")).to_have_text(shown_recent(newest, NEW_YORK))
    assert card.locator(".last-seen time").get_attribute("title").endswith("(America/New_York)")
    expect(page.locator(".site-footer")).to_contain_text("times in America/New_York (CSV and API in UTC)")
    screenshot(page, "kit-list-new-york")

    # and so does the kit page: its last-seen time, the charts' time axes and the legend's times
    page.goto(f"/dashboard/kits/{kit.id}/?range=hour")
    wait_for_charts(page)
    expect(page.locator(".kit-header .last-seen time")).to_have_text(shown_recent(newest, NEW_YORK))
    figure = page.locator("#chart-temperature")
    assert figure.get_attribute("data-time-axis-label") == "Time (America/New_York)"
    # 15:00 UTC is 10:00 in New York in January (EST) and 11:00 in July (EDT).
    axis_labels = "(f, t) => f.uplot.axes[0].values(f.uplot, t, 0, 50, 3600)"
    january, july = (datetime(2026, month, 15, 15, tzinfo=UTC).timestamp() for month in (1, 7))
    assert figure.evaluate(axis_labels, [january, january + 3600]) == ["10:00\n15 Jan", "11:00"]
    assert figure.evaluate(axis_labels, [july]) == ["11:00\n15 Jul"]
    plot = page.locator("#chart-temperature .u-over")
    box = plot.bounding_box()
    plot.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})
    local = newest.astimezone(NEW_YORK)
    expect(page.locator("#chart-temperature .u-legend")).to_contain_text(f"{local:%H:%M:%S %Z}")
    expect(page.locator("#chart-status")).to_contain_text(f"{utc_now().astimezone(NEW_YORK):%Z}")
    screenshot(page, "kit-page-new-york")

    # Then the CSV is asked for in UTC
    csv_query = parse_qs(urlsplit(page.locator("#csv-download").get_attribute("href")).query)
    assert csv_query["from"][0].endswith("Z") and csv_query["to"][0].endswith("Z")


def test_a_custom_range_is_typed_in_the_viewers_time_zone_and_kept_in_utc(open_browser, greenhouse):
    kit, written = greenhouse
    page = open_browser(timezone_id="America/New_York")
    sign_in(page, "owner", "pw-owner")
    page.goto(f"/dashboard/kits/{kit.id}/")
    wait_for_charts(page)

    # From 40 to 20 minutes ago, typed on New York's clock
    now = utc_now()
    start = (now - timedelta(minutes=40)).replace(second=0, microsecond=0)
    end = (now - timedelta(minutes=20)).replace(second=0, microsecond=0)
    page.get_by_text("Custom", exact=True).click()
    expect(page.locator("#range-custom-fields legend")).to_have_text("Custom range (America/New_York)")
    page.get_by_label("From").fill(f"{start.astimezone(NEW_YORK):%Y-%m-%dT%H:%M}")
    page.get_by_label("To", exact=True).fill(f"{end.astimezone(NEW_YORK):%Y-%m-%dT%H:%M}")
    page.get_by_role("button", name="Show range").click()
    wait_for_charts(page, loads=2)

    expected = sum(1 for moment in written if start <= moment < end)
    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, expected)
    address = parse_qs(urlsplit(page.url).query)
    assert (address["from"], address["to"]) == ([f"{start:%Y-%m-%dT%H:%M:%SZ}"], [f"{end:%Y-%m-%dT%H:%M:%SZ}"])

    # and a reload of that address shows the same range on New York's clock
    page.reload()
    wait_for_charts(page)
    expect(page.get_by_label("From")).to_have_value(f"{start.astimezone(NEW_YORK):%Y-%m-%dT%H:%M}")
    assert drawn_point_counts(page) == dict.fromkeys(SENSORS, expected)
