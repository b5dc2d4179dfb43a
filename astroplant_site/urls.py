from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import dashboard
from .auth_api import TokenApi, TokenRevokeApi
from .errors import page_not_found, server_error
from .health import healthz

handler404 = page_not_found
handler500 = server_error

urlpatterns = [
    # The grower dashboard (pages); the data it charts comes from the API below.
    path("", dashboard.home, name="home"),
    path("dashboard/kits/<str:kit_id>/", dashboard.kit_page, name="dashboard-kit"),
    path("dashboard/kits/<str:kit_id>/members/", dashboard.kit_members, name="dashboard-kit-members"),
    path("dashboard/kits/<str:kit_id>/members/add", dashboard.kit_member_add, name="dashboard-kit-member-add"),
    path(
        "dashboard/kits/<str:kit_id>/members/<str:username>/role",
        dashboard.kit_member_change_role,
        name="dashboard-kit-member-role",
    ),
    path(
        "dashboard/kits/<str:kit_id>/members/<str:username>/remove",
        dashboard.kit_member_remove,
        name="dashboard-kit-member-remove",
    ),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("auth/token", TokenApi.as_view(), name="auth-token"),
    path("auth/token/revoke", TokenRevokeApi.as_view(), name="auth-token-revoke"),
    # The schema and its docs page describe the API rather than serve it: no request-rate counts
    # (the API's throttles), like the dashboard's pages.
    path("api/schema/", SpectacularAPIView.as_view(throttle_classes=[]), name="schema"),
    # The split view serves its start-up script as a file (the Content-Security-Policy allows no inline
    # script); Swagger UI sets inline styles as it draws, allowed on this page alone.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema", throttle_classes=[])
        ),
        name="api-docs",
    ),
    path("healthz", healthz, name="healthz"),
    # Before kits.urls: /kits/<id>/data is telemetry's and /kits/<id>/configuration and /commands are
    # control's, not kit sub-resources of kits/.
    path("", include("telemetry.urls")),
    path("", include("control.urls")),
    path("", include("kits.urls")),
]
