# Loaded with Django, so tasks are bound to this app and `celery -A astroplant_site` finds it.
from .celery import app as celery_app

__all__ = ["celery_app"]
