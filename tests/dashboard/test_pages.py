"""The dashboard's pages through Django's test client: who sees which kit, the latest values with
units and the online mark, the empty states, the range a kit page opens with. Readings are real,
stored in the local DynamoDB through the telemetry service."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from astroplant_site import dashboard
from kits.models import Role
from telemetry.models import LatestValue

from .conftest import minutes_ago, utc_now

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("telemetry_tables")]


def chart_config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="kit-chart-config" type="application/json">') + len(
        '<script id="kit-chart-config" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


# --- the kit list -------------------------------------------------------------------------


def test_anonymous_visitor_sees_public_kits_only(client, make_kit, users):
    make_kit(owner=users["owner"], public=True, name="Balcony basil")
    make_kit(owner=users["owner"], public=False, name="Secret tomatoes")

    response = client.get("/")

    assert response.status_code == 200
    assert "Balcony basil" in response.content.decode()
    assert "Secret tomatoes" not in response.content.decode()
    assert "Sign in" in response.content.decode()


def test_grower_sees_own_kits_with_latest_values_units_and_online_mark(client, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"], name="Kitchen herbs")
    now = utc_now()
    write_readings(kit, minutes_ago(now, 3, 1), values=lambda moment, i: {"temperature": 21.5 + i, "co2": 640.0})
    client.force_login(users["owner"])

    response = client.get("/")

    html = response.content.decode()
    own = html[html.index('id="own-kits-heading"') :]
    assert "Kitchen herbs" in own
    card = own[own.index(f'data-kit-id="{kit.id}"') :]
    assert '<span class="value">22.5</span>&nbsp;<span class="unit">°C</span>' in card  # the newest of the two
    assert '<span class="value">640</span>&nbsp;<span class="unit">ppm</span>' in card
    assert "Online" in card.split("</article>")[0]
    assert "Last seen" in card.split("</article>")[0]


def test_kit_whose_last_reading_is_older_than_the_window_is_offline(client, make_kit, users, write_readings, settings):
    settings.DASHBOARD_ONLINE_WITHIN_MINUTES = 5
    kit = make_kit(owner=users["owner"])
    write_readings(kit, minutes_ago(utc_now(), 12))
    client.force_login(users["owner"])

    card = client.get("/").content.decode().split(f'data-kit-id="{kit.id}"')[1].split("</article>")[0]

    assert "Offline" in card
    assert "12\xa0minutes ago" in card


def test_the_online_window_is_a_setting(client, make_kit, users, write_readings, settings):
    settings.DASHBOARD_ONLINE_WITHIN_MINUTES = 15
    kit = make_kit(owner=users["owner"])
    write_readings(kit, minutes_ago(utc_now(), 12))
    client.force_login(users["owner"])

    card = client.get("/").content.decode().split(f'data-kit-id="{kit.id}"')[1].split("</article>")[0]

    assert "Online" in card


def test_grower_without_kits_is_told_how_to_get_one(client, users):
    client.force_login(users["nonmember"])

    response = client.get("/")

    html = response.content.decode()
    assert 'id="no-kits"' in html
    assert "You have no kits yet" in html
    assert "<strong>nonmember</strong>" in html  # the username to give a kit's owner
    assert "nonmember@example.org" in html


def test_kit_without_readings_says_so_on_its_card(client, make_kit, users):
    make_kit(owner=users["owner"])
    client.force_login(users["owner"])

    assert "No readings yet" in client.get("/").content.decode()


def own_section(response) -> str:
    html = response.content.decode()
    start = html.index('id="own-kits-heading"')
    return html[start : html.index("</section>", start)]


def other_section(response) -> str:
    html = response.content.decode()
    start = html.index('id="other-kits-heading"')
    return html[start : html.index("</section>", start)]


def kit_names(section: str, kits) -> list[str]:
    """The names of `kits` whose cards `section` holds, in the order shown."""
    shown = [
        (section.index(f'data-kit-id="{kit.id}"'), kit.name) for kit in kits if f'data-kit-id="{kit.id}"' in section
    ]
    return [name for _, name in sorted(shown)]


def test_my_kits_are_paginated_and_page_two_shows_the_rest(client, make_kit, users, monkeypatch):
    monkeypatch.setattr(dashboard, "KITS_PER_PAGE", 3)
    own = [make_kit(owner=users["owner"], name=f"Own kit {n}") for n in range(1, 6)]
    others = [make_kit(owner=users["viewer"], public=True, name=f"Public kit {n}") for n in range(1, 5)]
    client.force_login(users["owner"])

    first = client.get("/")
    second = client.get("/?my_page=2")

    assert kit_names(own_section(first), own) == ["Own kit 1", "Own kit 2", "Own kit 3"]
    assert "Page 1 of 2" in own_section(first)
    assert 'href="?my_page=2#own-kits-heading"' in own_section(first)
    assert kit_names(own_section(second), own) == ["Own kit 4", "Own kit 5"]
    assert 'href="?my_page=1#own-kits-heading"' in own_section(second)
    # Each list turns its own pages, keeping the other's.
    assert kit_names(other_section(second), others) == ["Public kit 1", "Public kit 2", "Public kit 3"]
    assert 'href="?my_page=2&amp;page=2#other-kits-heading"' in other_section(second)
    both = client.get("/?my_page=2&page=2")
    assert kit_names(own_section(both), own) == ["Own kit 4", "Own kit 5"]
    assert kit_names(other_section(both), others) == ["Public kit 4"]


def test_a_page_of_my_kits_past_the_last_shows_the_last(client, make_kit, users, monkeypatch):
    monkeypatch.setattr(dashboard, "KITS_PER_PAGE", 2)
    own = [make_kit(owner=users["owner"], name=f"Own kit {n}") for n in range(1, 4)]
    client.force_login(users["owner"])

    assert kit_names(own_section(client.get("/?my_page=9")), own) == ["Own kit 3"]
    assert kit_names(own_section(client.get("/?my_page=nonsense")), own) == ["Own kit 1", "Own kit 2"]


def test_a_page_of_my_kits_costs_the_same_queries_whatever_its_kits(
    client, make_kit, users, write_readings, monkeypatch
):
    # Given five kits with readings, four to a page: a full first page and a second page of one
    monkeypatch.setattr(dashboard, "KITS_PER_PAGE", 4)
    now = utc_now()
    kits = [make_kit(owner=users["owner"], name=f"Own kit {n}") for n in range(1, 6)]
    for index, kit in enumerate(kits):
        write_readings(kit, minutes_ago(now, 2), values=lambda moment, i, index=index: {"temperature": 20.0 + index})
    client.force_login(users["owner"])
    client.get("/")  # the session and user, read once before counting

    # When each page is shown
    queries = {}
    for number in (1, 2):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(f"/?my_page={number}")
        queries[number] = [query["sql"] for query in captured.captured_queries]
        section = own_section(response)
        shown = [kit for kit in kits if f'data-kit-id="{kit.id}"' in section]
        for kit in shown:  # every card has its latest value
            card = section.split(f'data-kit-id="{kit.id}"')[1].split("</article>")[0]
            assert f'<span class="value">{20 + kits.index(kit)}</span>' in card
        assert len(shown) == (4 if number == 1 else 1)

    # Then the full page costs no more than the page of one, its latest values one query
    assert len(queries[1]) == len(queries[2])
    assert sum(LatestValue._meta.db_table in sql for sql in queries[1]) == 1


# --- the kit page -------------------------------------------------------------------------


def test_member_sees_one_chart_per_sensor_with_units(client, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"], members={users["viewer"]: Role.VIEWER})
    write_readings(kit, minutes_ago(utc_now(), 2, 1))
    client.force_login(users["viewer"])

    response = client.get(f"/dashboard/kits/{kit.id}/")

    assert response.status_code == 200
    html = response.content.decode()
    for key, unit in [("temperature", "°C"), ("humidity", "%"), ("co2", "ppm"), ("light", "lux")]:
        figure = html.split(f'id="chart-{key}"')[1].split("</figure>")[0]
        assert f'<span class="chart-unit">({unit})</span>' in figure
    config = chart_config(response)
    assert config["dataUrl"] == f"/kits/{kit.id}/data"
    assert [s["key"] for s in config["sensors"]] == ["co2", "humidity", "light", "temperature"]
    assert config["range"] == {"preset": "day"}
    assert "Manage members" not in html  # a viewer does not manage members


def test_kit_without_readings_shows_what_to_do_instead_of_charts(client, make_kit, users):
    kit = make_kit(owner=users["owner"])
    client.force_login(users["owner"])

    html = client.get(f"/dashboard/kits/{kit.id}/").content.decode()

    assert 'id="no-readings"' in html
    assert "Switch the kit on" in html
    assert 'id="charts"' not in html


def test_non_member_gets_404_for_a_private_kit_page(client, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"])
    write_readings(kit, minutes_ago(utc_now(), 1))
    client.force_login(users["nonmember"])

    response = client.get(f"/dashboard/kits/{kit.id}/")

    assert response.status_code == 404
    assert kit.name not in response.content.decode()


def test_anonymous_visitor_gets_404_for_a_private_kit_and_is_offered_sign_in(client, make_kit, users):
    kit = make_kit(owner=users["owner"])

    response = client.get(f"/dashboard/kits/{kit.id}/")

    assert response.status_code == 404
    assert "sign in" in response.content.decode()


def test_public_kit_page_is_open_without_signing_in(client, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"], public=True, name="Classroom lettuce")
    write_readings(kit, minutes_ago(utc_now(), 1))

    response = client.get(f"/dashboard/kits/{kit.id}/")

    assert response.status_code == 200
    assert "Classroom lettuce" in response.content.decode()


def test_staff_sees_every_kit_page(client, make_kit, users):
    kit = make_kit(owner=users["owner"])
    client.force_login(users["staff"])

    assert client.get(f"/dashboard/kits/{kit.id}/").status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?range=week", {"preset": "week"}),
        ("?range=hour", {"preset": "hour"}),
        (
            "?range=custom&from=2026-03-01T08:00&to=2026-03-02T08:30",
            {"preset": "custom", "from": "2026-03-01T08:00:00Z", "to": "2026-03-02T08:30:00Z"},
        ),
    ],
)
def test_kit_page_opens_with_the_range_in_its_address(client, make_kit, users, write_readings, query, expected):
    kit = make_kit(owner=users["owner"], public=True)
    write_readings(kit, minutes_ago(utc_now(), 1))

    response = client.get(f"/dashboard/kits/{kit.id}/{query}")

    assert chart_config(response)["range"] == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?range=decade", "Select a valid choice"),
        ("?range=custom&from=2026-03-02T08:00&to=2026-03-01T08:00", "must come before its end"),
        ("?range=custom&from=2026-03-02T08:00", "needs both a start and an end"),
        ("?range=custom&from=yesterday&to=2026-03-01T08:00", "Enter a valid date/time"),
    ],
)
def test_bad_range_in_the_address_is_explained_and_the_last_day_shown(
    client, make_kit, users, write_readings, query, message
):
    kit = make_kit(owner=users["owner"], public=True)
    write_readings(kit, minutes_ago(utc_now(), 1))

    response = client.get(f"/dashboard/kits/{kit.id}/{query}")

    assert response.status_code == 200
    assert message in response.content.decode()
    assert "Showing the last day instead." in response.content.decode()
    assert chart_config(response)["range"] == {"preset": "day"}


def test_kit_page_shows_the_last_seen_time(client, make_kit, users, write_readings):
    kit = make_kit(owner=users["owner"])
    moment = utc_now() - timedelta(minutes=1)
    write_readings(kit, [moment.replace(microsecond=0)])
    client.force_login(users["owner"])

    html = client.get(f"/dashboard/kits/{kit.id}/").content.decode()

    # In UTC, as the page's script's input and as what shows without scripts; the script shows it
    # in the viewer's zone (tests/dashboard/test_browser.py).
    time = html.split(f'<time datetime="{moment:%Y-%m-%dT%H:%M:%SZ}" data-local-time')[1].split("</time>")[0]
    assert time.endswith(f">{moment.day} {moment:%b %Y, %H:%M} UTC")
    assert "Online" in html


def test_kit_without_sensors_says_an_admin_adds_them(client, make_kit, users):
    kit = make_kit(owner=users["owner"], sensors=[])
    client.force_login(users["owner"])

    html = client.get(f"/dashboard/kits/{kit.id}/").content.decode()

    assert "No sensors configured" in html
