"""GET /kits/{id}/data against the real local DynamoDB, through the schema-checking client."""

import csv
import io
import re
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from kits.registry import SensorSpec, kit_update
from telemetry.services import Reading, readings_write

from .conftest import minutely

pytestmark = pytest.mark.integration


def iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def history(telemetry_tables, private_kit, two_days_ago):
    """The private kit (temperature and humidity sensors) with 90 one-minute readings from
    two days ago, 00:00 UTC."""
    kit_update(
        kit=private_kit,
        sensors=[
            SensorSpec("temperature", "temperature", "°C", -10, 50),
            SensorSpec("humidity", "humidity", "%", 0, 100),
        ],
    )
    readings = minutely("private-kit", two_days_ago, 90)
    readings_write(readings=readings)
    return readings


def test_latest_data_points_in_the_seed_shape(make_client, users, history):
    response = make_client(users["viewer"]).get("/kits/private-kit/data")

    assert response.status_code == 200
    newest = history[-1]
    assert response.json() == {
        "humidity": [{"timestamp": iso(newest.timestamp), "value": 50.0}],
        "temperature": [{"timestamp": iso(newest.timestamp), "value": 28.9}],
    }


def test_the_latest_n_points_per_sensor(make_client, users, history):
    response = make_client(users["viewer"]).get("/kits/private-kit/data?last=5&sensor=temperature")

    assert response.status_code == 200
    assert response.json() == {
        "temperature": [{"timestamp": iso(r.timestamp), "value": r.values["temperature"]} for r in history[-5:]]
    }


def test_a_kit_without_data_has_empty_latest_data(make_client, users, telemetry_tables, public_kit):
    response = make_client().get("/kits/public-kit/data")

    assert response.status_code == 200
    assert response.json() == {}


def test_raw_range_pages_follow_the_link_header_without_gaps_or_repeats(make_client, users, history, two_days_ago):
    client = make_client(users["owner"])
    url = f"/kits/private-kit/data?from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(hours=2))}"
    url += "&resolution=raw&page_size=7&sensor=temperature"
    seen, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response["X-Resolution"] == "raw"
        seen += [point["timestamp"] for point in response.json()["temperature"]]
        pages += 1
        link = response.get("Link")
        url = re.fullmatch(r'<(.+)>; rel="next"', link).group(1) if link else None

    assert pages == 13  # 12 full pages of 7 and one of 6
    assert seen == [iso(r.timestamp) for r in history]


def test_range_at_each_rollup_resolution_carries_min_max_mean(make_client, users, history, two_days_ago):
    client = make_client(users["viewer"])
    window = f"from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(days=1))}&sensor=temperature"

    hourly = client.get(f"/kits/private-kit/data?{window}&resolution=1h")
    daily = client.get(f"/kits/private-kit/data?{window}&resolution=1d")

    assert hourly.status_code == daily.status_code == 200
    first_hour = [r.values["temperature"] for r in history[:60]]
    assert hourly.json()["temperature"][0] == {
        "timestamp": iso(two_days_ago),
        "value": pytest.approx(sum(first_hour) / 60),
        "mean": pytest.approx(sum(first_hour) / 60),
        "min": 20.0,
        "max": 25.9,
        "count": 60,
    }
    assert [p["count"] for p in hourly.json()["temperature"]] == [60, 30]
    (day,) = daily.json()["temperature"]
    assert (day["timestamp"], day["count"], day["min"], day["max"]) == (iso(two_days_ago), 90, 20.0, 28.9)


def test_auto_resolution_picks_the_finest_with_at_most_about_2000_points(
    make_client, users, telemetry_tables, public_kit
):
    # given 2 days of one-minute readings: 2880, more than auto's 2000
    start = public_kit.created_at.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    readings_write(
        readings=[Reading("public-kit", start + timedelta(minutes=i), {"humidity": 50.0}) for i in range(2880)]
    )
    client = make_client()

    def fetch(days_before: int, days: int):
        begin = start - timedelta(days=days_before)
        response = client.get(f"/kits/public-kit/data?from={iso(begin)}&to={iso(begin + timedelta(days=days))}")
        assert response.status_code == 200
        return response["X-Resolution"], len(response.json()["humidity"])

    assert fetch(0, 1) == ("raw", 1440)  # the first day alone: 1440 readings
    assert fetch(0, 2) == ("1h", 48)  # both days: 2880 readings, 48 hours
    assert fetch(50, 100) == ("1d", 2)  # 2400 hours: too many even for 1h


def test_csv_export_streams_the_range_with_units(make_client, users, history, two_days_ago):
    url = f"/kits/private-kit/data?from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(hours=1))}"
    response = make_client(users["viewer"]).get(url + "&resolution=raw&format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["timestamp", "sensor", "value", "unit"]
    assert rows[1:3] == [
        [iso(two_days_ago), "humidity", "50.0", "%"],
        [iso(two_days_ago), "temperature", "20.0", "°C"],
    ]
    assert len(rows) == 1 + 60 * 2


def test_a_raw_csv_longer_than_allowed_is_refused_with_a_400_saying_to_narrow_the_range(
    make_client, users, history, two_days_ago, settings
):
    # Given one CSV of raw readings may cover at most one day
    settings.TELEMETRY_CSV_RAW_MAX_DAYS = 1
    viewer = make_client(users["viewer"])
    one_day = f"from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(days=1))}"
    two_days = f"from={iso(two_days_ago)}&to={iso(two_days_ago + timedelta(days=2))}"

    # When a viewer asks for two days of raw readings as CSV
    response = viewer.get(f"/kits/private-kit/data?{two_days}&resolution=raw&format=csv")

    # Then they are told, in JSON, to narrow the range, before any row is sent
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    [message] = response.json()["errors"]["to"]
    assert "at most 1 days" in message and "spans 2" in message and "narrow from and to" in message
    # while one day of raw readings, and two days of hourly means, are served
    assert viewer.get(f"/kits/private-kit/data?{one_day}&resolution=raw&format=csv").status_code == 200
    assert viewer.get(f"/kits/private-kit/data?{two_days}&resolution=1h&format=csv").status_code == 200


@pytest.mark.parametrize(
    ("role", "kit", "status"),
    [
        ("anonymous", "private-kit", 404),
        ("nonmember", "private-kit", 404),
        ("viewer", "private-kit", 200),
        ("configurer", "private-kit", 200),
        ("owner", "private-kit", 200),
        ("staff", "private-kit", 200),
        ("anonymous", "public-kit", 200),
        ("nonmember", "public-kit", 200),
        ("anonymous", "no-such-kit", 404),
    ],
)
def test_who_may_see_a_kit_may_see_its_data(make_client, users, public_kit, history, dynamodb_calls, role, kit, status):
    user = None if role == "anonymous" else users[role]
    # GET /kits/{id} as the yardstick, through a plain client: its own schema check is not ours
    plain = APIClient()
    if user:
        plain.force_authenticate(user)
    kit_response = plain.get(f"/kits/{kit}")

    data_response = make_client(user).get(f"/kits/{kit}/data?format=csv")

    assert kit_response.status_code == data_response.status_code == status
    if status == 404:
        assert data_response.json() == {"detail": f"There is no kit with id '{kit}' that you may see."}
        assert dynamodb_calls == []  # DynamoDB was not even asked


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
        ("from=yesterday", "from"),
        ("from=2026-01-01T00:00:00Z&to=2026-13-01", "to"),
        ("sensor=co2", "sensor"),
        ("from=2026-01-01T00:00:00Z&resolution=5m", "resolution"),
        ("last=0", "last"),
        ("last=1001", "last"),
        ("last=5&from=2026-01-01T00:00:00Z", "last"),
        ("to=2026-01-01T00:00:00Z", "to"),
        ("from=2026-01-01T00:00:00Z&page_size=0", "page_size"),
        ("from=2026-01-01T00:00:00Z&page_size=1000000", "page_size"),
        ("from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&resolution=1h", "resolution"),
        ("from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&resolution=raw&cursor=bm9wZQ", "cursor"),
        ("from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&resolution=1h&cursor=YWZ0ZXI6MQ", "cursor"),
        ("format=xml", "format"),
        ("limit=5", "limit"),
    ],
)
def test_bad_input_answers_400_saying_what_is_wrong(make_client, users, history, query, field):
    response = make_client(users["viewer"]).get(f"/kits/private-kit/data?{query}")

    assert response.status_code == 400
    body = response.json()
    assert field in body["errors"], body
    assert body["detail"].startswith("Invalid input:")
