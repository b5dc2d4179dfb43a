"""`make run`'s server-less Celery broker (SQLAlchemy on a SQLite file) still takes tasks. That a
task whose worker died comes back on Redis is shown with real killed workers in test_faults.py."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
