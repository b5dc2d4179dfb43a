"""The telemetry management commands, against the real local DynamoDB."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from telemetry import selectors
from telemetry.dynamodb import client, table
from telemetry.models import MODELS

pytestmark = pytest.mark.integration


def test_dynamodb_setup_creates_the_tables_with_ttl_and_is_safe_to_run_again(moto_server, settings):
    settings.DYNAMODB_TABLE_PREFIX = "setup-test-"
    first, second = StringIO(), StringIO()
    try:
        call_command("dynamodb_setup", stdout=first)
        call_command("dynamodb_setup", stdout=second)

        names = client().list_tables()["TableNames"]
        assert {"setup-test-telemetry-readings", "setup-test-telemetry-rollups"} <= set(names)
        ttl = client().describe_time_to_live(TableName="setup-test-telemetry-readings")["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "x")
        assert first.getvalue().count("created") == 2
        assert second.getvalue().count("exists") == 2
    finally:
        for model in MODELS:
            table(model).delete_table()


def test_telemetry_seed_writes_history_through_the_service(telemetry_tables, private_kit):
    out = StringIO()
    call_command("telemetry_seed", kit="private-kit", days=1, interval=600, no_progress=True, stdout=out)

    assert "Seeded 144 readings of temperature for private-kit" in out.getvalue()
    latest = selectors.readings_latest(kit=private_kit, last=1000)
    temperatures = [point.value for point in latest["temperature"]]
    assert len(temperatures) == 144
    assert -10 <= min(temperatures) < max(temperatures) <= 50  # a day/night curve within the sensor's range


def test_telemetry_seed_refuses_an_unknown_kit(telemetry_tables, db):
    with pytest.raises(CommandError, match="There is no kit 'nope'"):
        call_command("telemetry_seed", kit="nope", no_progress=True)


def test_ingest_refuses_to_start_against_a_dynamodb_without_the_tables(moto_server, settings, tmp_path):
    # given a DynamoDB where `dynamodb_setup` never ran for this prefix
    settings.DYNAMODB_TABLE_PREFIX = "never-set-up-"
    settings.INGEST_CERTIFICATE_FILE = str(tmp_path / "certificate.pem.crt")
    settings.INGEST_PRIVATE_KEY_FILE = str(tmp_path / "private.pem.key")
    settings.INGEST_ROOT_CA_FILE = str(tmp_path / "root-ca.pem")

    # when the bridge starts, then it stops at once and says what to run
    with pytest.raises(CommandError, match=r"run `python manage.py dynamodb_setup`") as raised:
        call_command("ingest", stdout=StringIO())
    assert "never-set-up-telemetry-readings" in str(raised.value)
