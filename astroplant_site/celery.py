"""The Celery app: `celery -A astroplant_site worker` and `celery -A astroplant_site beat`.

Its configuration is the CELERY_* Django settings; tasks live in each app's tasks.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "astroplant_site.settings.local")

app = Celery("astroplant_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _redeliver_tasks_of_dead_workers(sender, **kwargs):
    """On Redis and SQS, a task taken by a worker that died (acks_late) is handed out again after
    the visibility timeout: kombu's Redis default is an hour. SQLAlchemy, the server-less broker
    of `make run`, has no such timeout and refuses the option."""
    from django.conf import settings

    if sender.conf.broker_url.split(":", 1)[0] in ("redis", "rediss", "sqs"):
        sender.conf.broker_transport_options = {
            "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT_SECONDS,
            **(sender.conf.broker_transport_options or {}),
        }
