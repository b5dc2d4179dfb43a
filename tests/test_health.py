"""`GET /healthz`: what a load balancer (and anyone else) sees, healthy or not."""

import logging

import pytest
from django.db import connection

from localdev.ports import free_port


@pytest.fixture
def database_away(django_db_blocker):
    """The web app's database connection points where no database answers (a closed port for
    PostgreSQL, a missing directory for SQLite), as when the database server is down."""
    broken = {"NAME": "/nonexistent/astroplant/db.sqlite3"} if connection.vendor == "sqlite" else {"PORT": free_port()}
    with django_db_blocker.unblock():
        connection.close()
        original = {name: connection.settings_dict.get(name) for name in broken}
        connection.settings_dict.update(broken)
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict.update(original)


def test_healthz_answers_when_the_database_does(client, db):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_says_only_unavailable_when_the_database_is_away_and_logs_why(client, database_away, caplog):
    # Given a database that does not answer
    # When anyone asks /healthz
    with caplog.at_level(logging.ERROR, logger="astroplant_site.health"):
        response = client.get("/healthz")

    # Then they get 503 and "unavailable", and nothing of the driver's error text
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable"}
    # and the operator finds the error itself in the log
    [record] = [r for r in caplog.records if r.name == "astroplant_site.health"]
    assert record.exc_info is not None
    assert record.exc_info[0].__module__.startswith("django.db")
