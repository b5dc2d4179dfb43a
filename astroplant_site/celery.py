"""The Celery app: `celery -A astroplant_site worker` and `celery -A astroplant_site beat`.

Its configuration is the CELERY_* Django settings; tasks live in each app's tasks.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "astroplant_site.settings.local")

app = Celery("astroplant_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
