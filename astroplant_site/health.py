"""`GET /healthz`: for load balancers and `make run`. 200 when the app and its database answer.

Anyone may ask, so a failure says only "unavailable"; what went wrong goes to the log."""

import logging

from django.db import connection
from django.http import JsonResponse

logger = logging.getLogger(__name__)


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any database failure means unhealthy, whatever its type
        logger.exception("Health check: the database does not answer")
        return JsonResponse({"status": "unavailable", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
