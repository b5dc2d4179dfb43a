"""The Celery broker settings: a task whose worker died comes back on Redis, and `make run`'s
server-less broker (SQLAlchemy on a SQLite file) still takes tasks."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_on_redis_a_dead_workers_task_is_handed_out_again_after_the_visibility_timeout(settings):
    from astroplant_site.celery import app

    assert app.conf.broker_url.startswith("redis://")
    assert app.conf.broker_transport_options["visibility_timeout"] == settings.CELERY_VISIBILITY_TIMEOUT_SECONDS


def test_the_server_less_broker_of_make_run_takes_tasks(tmp_path):
    # Given the local settings on a machine without Redis (make run's fallback broker)
    broker = tmp_path / "broker.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "astroplant_site.settings.local",
        "CELERY_BROKER_URL": f"sqla+sqlite:///{broker}",
    }

    # When a provisioning task is queued
    queued = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from kits import tasks; tasks.kit_provision_task.delay('k-1')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # Then it waits in the broker's file
    assert queued.returncode == 0, queued.stderr
    with sqlite3.connect(broker) as database:
        assert database.execute("SELECT COUNT(*) FROM kombu_message").fetchone() == (1,)
