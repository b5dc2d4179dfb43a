"""Django's own 404 and 500 (for paths no view handles): JSON for API clients, a page otherwise."""

from django.http import JsonResponse
from django.views import defaults

API_PREFIXES = ("/kits", "/auth/", "/api/", "/healthz")


def _wants_json(request) -> bool:
    return request.path.startswith(API_PREFIXES) or "application/json" in request.headers.get("Accept", "")


def page_not_found(request, exception):
    if _wants_json(request):
        return JsonResponse({"detail": f"There is nothing at {request.path}: check the path."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _wants_json(request):
        return JsonResponse({"detail": "Something went wrong on our side; it has been logged."}, status=500)
    return defaults.server_error(request)
