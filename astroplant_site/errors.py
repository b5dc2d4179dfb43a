"""Django's own 404 and 500 (for paths no view handles): JSON for API clients, a page otherwise."""

from csp.decorators import csp_update
from django.http import JsonResponse
from django.views import defaults

API_PREFIXES = ("/kits", "/auth/", "/api/", "/healthz")


def _wants_json(request) -> bool:
    return request.path.startswith(API_PREFIXES) or "application/json" in request.headers.get("Accept", "")


def page_not_found(request, exception):
    if _wants_json(request):
        return JsonResponse({"detail": f"There is nothing at {request.path}: check the path."}, status=404)
    return defaults.page_not_found(request, exception)


# The page stands alone (no static files: something is broken), styled inline, which the
# Content-Security-Policy allows here alone: it shows nothing anyone sent.
@csp_update({"style-src": ["'unsafe-inline'"]})
def server_error(request):
    if _wants_json(request):
        return JsonResponse({"detail": "Something went wrong on our side; it has been logged."}, status=500)
    return defaults.server_error(request)
