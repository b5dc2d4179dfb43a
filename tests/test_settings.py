"""Production settings refuse to start without their secrets and pass Django's deploy checks."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, **env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage(
        "check", DJANGO_SETTINGS_MODULE="astroplant_site.settings.production", DJANGO_ALLOWED_HOSTS="example.org"
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("key", ["", "short-but-not-empty", "x" * 49])
def test_production_refuses_to_start_with_an_empty_or_short_secret_key(key):
    # Given production settings whose DJANGO_SECRET_KEY is set but empty or under 50 characters
    # When anything starts with them
    result = _manage(
        "check",
        DJANGO_SETTINGS_MODULE="astroplant_site.settings.production",
        DJANGO_SECRET_KEY=key,
        DJANGO_ALLOWED_HOSTS="example.org",
    )

    # Then it refuses, naming the variable and the length it needs
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "at least 50" in result.stderr


def test_production_passes_the_deploy_checks_with_no_warning():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="astroplant_site.settings.production",
        DJANGO_SECRET_KEY="a-long-random-production-secret-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="astroplant.example.org",
    )

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_demo_data_with_known_passwords_is_refused_in_production():
    result = _manage(
        "demo_setup",
        DJANGO_SETTINGS_MODULE="astroplant_site.settings.production",
        DJANGO_SECRET_KEY="a-long-random-production-secret-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="astroplant.example.org",
        DATABASE_URL="sqlite:////nonexistent/never-used.sqlite3",
    )

    assert result.returncode != 0
    assert "local settings only" in result.stderr
