"""What the kit reports of its configuration (configuration_reported, called by the ingest bridge)
and how GET /kits/{id}/configuration shows it: pending until the kit speaks of the current
version, then applied or rejected; `reported` is what it last applied."""

from datetime import UTC, datetime, timedelta

import pytest

from control import services
from control.exceptions import ReportRefused

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def kit(actuated_kits):
    return actuated_kits["private"]


@pytest.fixture
def viewer(make_client, users):
    return make_client(users["viewer"])


def change(kit, user, seconds):
    return services.configuration_change(kit=kit, desired={"interval_seconds": seconds}, user=user)


def report(version, status="applied", reason=None, at=T0):
    services.configuration_reported(kit_id="private-kit", version=version, status=status, reason=reason, reported_at=at)


def state(client):
    return client.get("/kits/private-kit/configuration").json()


def test_applied_makes_the_version_reported(kit, users, viewer):
    first = change(kit, users["owner"], 10)

    report(1)

    answer = state(viewer)
    assert (answer["version"], answer["status"], answer["reason"]) == (1, "applied", None)
    assert answer["reported"] == first.desired
    assert answer["applied_at"] == "2026-12-01T10:00:00Z"


def test_rejected_keeps_what_the_kit_runs_and_says_why(kit, users, viewer):
    change(kit, users["owner"], 10)
    report(1)
    change(kit, users["owner"], 20)

    report(2, "rejected", "no driver for actuator 'led'", at=T0 + timedelta(minutes=1))

    answer = state(viewer)
    assert (answer["version"], answer["status"], answer["reason"]) == (2, "rejected", "no driver for actuator 'led'")
    assert answer["reported"]["interval_seconds"] == 10  # still version 1
    assert answer["applied_at"] == "2026-12-01T10:00:00Z"


def test_a_new_change_is_pending_until_the_kit_reports_on_it(kit, users, viewer):
    change(kit, users["owner"], 10)
    report(1, "rejected", "nope")

    change(kit, users["owner"], 20)

    answer = state(viewer)
    assert (answer["version"], answer["status"], answer["reason"], answer["reported"]) == (2, "pending", None, None)


def test_a_late_older_report_and_a_redelivery_change_nothing(kit, users, viewer):
    change(kit, users["owner"], 10)
    change(kit, users["owner"], 20)
    report(2, at=T0 + timedelta(minutes=2))
    before = state(viewer)

    report(1, at=T0 + timedelta(minutes=1))  # sent before, delivered after
    report(2, at=T0 + timedelta(minutes=2))  # delivered twice

    assert state(viewer) == before
    assert before["reported"]["interval_seconds"] == 20


def test_a_kit_running_its_defaults_may_say_so(kit, viewer):
    report(0)

    answer = state(viewer)
    assert (answer["version"], answer["status"]) == (0, "applied")
    assert answer["reported"] == answer["desired"]


def test_a_version_never_sent_is_refused(kit, users):
    change(kit, users["owner"], 10)

    with pytest.raises(ReportRefused, match="reports configuration version 5, but its newest is version 1"):
        report(5)


def test_an_unknown_kit_is_refused(db):
    with pytest.raises(ReportRefused, match="No kit"):
        services.configuration_reported(kit_id="nobody", version=0, status="applied", reason=None, reported_at=T0)
